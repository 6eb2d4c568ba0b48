package embedded

import _ "embed"

// natsConf is the dev server's default config, used when Config names no
// ConfigFile. The file lives here because go:embed cannot reach outside
// the package's directory; the repository root's nats.conf (the path
// DESIGN.md, the Makefile and the docs give) is a symbolic link to it, so
// there is one file to edit and nothing to keep in sync.
//
//go:embed nats.conf
var natsConf string
