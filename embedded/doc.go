// Package embedded starts nats-server in-process with JetStream, for
// `jetfleet dev` and for tests, so both run the same code path.
//
// # Lifecycle
//
// [Start] returns once the server accepts connections, or fails fast with a
// clear error (port in use, unwritable store, bad config). [Server.Shutdown]
// stops it and waits until it is gone; it is safe to call twice.
//
//	srv, err := embedded.Start(embedded.Config{StoreDir: dir, Port: -1})
//	if err != nil { ... }
//	defer srv.Shutdown()
//	nc, _ := nats.Connect(srv.ClientURL())
//
// [StartCluster] starts N such servers routed into one JetStream cluster on
// loopback, for tests of replicated streams and failover.
package embedded
