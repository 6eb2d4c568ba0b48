package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/internal/httpguard"
	"github.com/jetfleet/jetfleet/marts/query"
)

func formatFlag() cli.Flag {
	return &cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "table, csv or json", Value: "table"}
}

func queryCommand() *cli.Command {
	return &cli.Command{
		Name:      "query",
		Usage:     "run read-only SQL over the marts and the lake",
		ArgsUsage: "SQL",
		Description: `Runs one SELECT, WITH, FROM, SUMMARIZE or DESCRIBE statement in DuckDB over views named
after the marts (and the lake datasets), read from the Parquet files under --data-dir. Works while
the fleet runs. Other statements, and files outside the marts and lake, are refused.
Without SQL (and with nothing on stdin) it lists the views.

   jetfleet query "SELECT day, country, revenue_usd FROM daily_sales ORDER BY day"
   jetfleet query --format csv "SUMMARIZE customer_ltv"
   echo "FROM daily_sales" | jetfleet query --format json
   jetfleet query --http 127.0.0.1:8089      # GET /query?q=...&format=csv

Over HTTP it answers requests addressed to localhost or the bound IP (--http-allow-host
adds names), never cross-origin browser requests, and with --http-token only requests
that carry it; --max-queries run at a time, each for at most --query-timeout.
The engine does not spill to disk: a query that needs more than --memory-limit fails.`,
		Flags: append([]cli.Flag{
			dataDirFlag(), formatFlag(),
			&cli.StringFlag{Name: "http", Usage: "serve queries over HTTP on `ADDR` instead (GET /query?q=SQL&format=json|csv|table, or POST the SQL)"},
			&cli.StringFlag{Name: "memory-limit", Usage: "DuckDB memory of a query (of each, over HTTP)", Value: "512MB"},
		}, append(append(httpFlags(), queryFlags()...), logFlags()...)...),
		Action: runQuery,
	}
}

func runQuery(c *cli.Context) error {
	format, err := query.ParseFormat(c.String("format"))
	if err != nil {
		return usagef(c, "%v", err)
	}
	cfg := query.Config{DataDir: c.String("data-dir"), MemoryLimit: c.String("memory-limit")}
	if c.String("http") != "" {
		if c.NArg() > 0 {
			return usagef(c, "give SQL or --http, not both")
		}
		return serveQueries(c, cfg)
	}
	sql := strings.TrimSpace(strings.Join(c.Args().Slice(), " "))
	if sql == "" && !isatty.IsTerminal(os.Stdin.Fd()) {
		b, err := io.ReadAll(io.LimitReader(c.App.Reader, 1<<20))
		if err != nil {
			return cli.Exit(fmt.Sprintf("read SQL from stdin: %v", err), 1)
		}
		sql = strings.TrimSpace(string(b))
	}
	if _, err := os.Stat(cfg.DataDir); err != nil {
		return cli.Exit(fmt.Sprintf("data dir %s: %v (set --data-dir or JETFLEET_DATA_DIR)", cfg.DataDir, errors.Unwrap(err)), 1)
	}
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	e, err := query.Open(ctx, cfg)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer e.Close()
	if sql == "" {
		return writeTables(c.App.Writer, e.Tables(), format)
	}
	res, err := e.Query(ctx, sql)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return res.Write(c.App.Writer, format)
}

// writeTables lists the views with their freshness.
func writeTables(w io.Writer, tables []query.Table, format query.Format) error {
	res := &query.Result{Columns: []query.Column{
		{Name: "name", Type: "VARCHAR"},
		{Name: "kind", Type: "VARCHAR"},
		{Name: "rows", Type: "BIGINT"},
		{Name: "partitions", Type: "BIGINT"},
		{Name: "updated_at", Type: "TIMESTAMPTZ"},
		{Name: "last_seq", Type: "UBIGINT"},
	}}
	for _, t := range tables {
		var updated any
		if !t.Manifest.UpdatedAt.IsZero() {
			updated = t.Manifest.UpdatedAt
		}
		res.Rows = append(res.Rows, []any{t.Name, t.Kind, t.Manifest.Rows, int64(t.Manifest.Partitions), updated, t.Manifest.LastSeq})
	}
	return res.Write(w, format)
}

func serveQueries(c *cli.Context, cfg query.Config) error {
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	if err := checkQueryFlags(c); err != nil {
		return err
	}
	ln, guard, err := listenHTTP(c, "http", log)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/query", httpguard.Limit(c.Int("max-queries"), query.Handler(query.HandlerConfig{Engine: cfg, Timeout: c.Duration("query-timeout")})))
	ctx, stop := signalContext(log)
	defer stop()
	srv := serveHTTP(ln, guard.Wrap(mux), log)
	log.Info().Str("url", "http://"+ln.Addr().String()+"/query").Str("data_dir", cfg.DataDir).
		Int("max_queries", c.Int("max-queries")).Bool("token", c.String("http-token") != "" || c.String("http-token-file") != "").Msg("serving queries")
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
