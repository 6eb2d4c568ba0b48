// Package console is the operator's page in the browser, served at / by
// `jetfleet dev` and `jetfleet supervisor --http` (docs/console.md).
//
// It is one HTML page with plain JavaScript and CSS, embedded in the
// binary (no framework, no build step), over a small JSON API under
// /console/api/ built on what the CLI uses: [supervisor.Snapshot] for the
// graph and the books, the dead-letter functions of package supervisor
// for list, show and replay, the JF_ALERTS stream, the control subjects
// for pause, resume and drain, and the locked-down query engine of
// marts/query for the query box. The page polls; charts are inline SVG
// drawn by the page from a history the console samples every few seconds.
//
// The console checks no caller: the binary mounts it behind
// internal/httpguard like every other endpoint. Write actions (replay,
// pause, resume, drain) are refused with 403 unless Config.Write is set,
// and they act with the process's own NATS connection: nothing typed in
// the page reaches NATS but dead-letter sequences and a step name.
//
// Lifecycle: [New], then Start (begins sampling the history), Stop.
//
//	c, err := console.New(console.Config{JS: js, Conn: nc, DataDir: dir, Logger: log})
//	_ = c.Start(ctx)
//	mux.Handle("GET /{$}", c)
//	mux.Handle("/console/", c)
package console
