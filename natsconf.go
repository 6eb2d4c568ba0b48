// Package jetfleet holds what the whole module shares at its root: the
// default dev server configuration, built in from nats.conf.
package jetfleet

import _ "embed"

// NATSConf is the text of nats.conf, the dev server's default config.
//
//go:embed nats.conf
var NATSConf string
