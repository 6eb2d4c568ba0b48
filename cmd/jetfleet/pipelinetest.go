package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/pipeline/testrun"
)

func pipelineTestCommand() *cli.Command {
	return &cli.Command{
		Name:      "test",
		Usage:     "run a pipeline's test cases on a real fleet in this process",
		ArgsUsage: "[FILE|DIR]",
		Description: `Runs the cases of *.test.yaml files: FILE (a test file, or a pipeline file with
its <name>.test.yaml beside it) or every test file under DIR (default .). Each case
publishes its input records into a fresh fleet of the pipeline (an embedded NATS
server and a data dir in a temp dir, the real steps and DuckDB), waits until the
fleet is idle and compares the clean records, dead letters, mart rows and alerts
with the case's expectations (docs/pipeline.md, "Testing a pipeline").

Prints one line per case and, for a failed one, what differed row by row (- want,
+ got, ~ a row whose fields differ). Exit 0 when every case passes, 1 otherwise.

   jetfleet pipeline test examples/
   jetfleet pipeline test examples/shop/pipeline.yaml --update   # rewrite golden files
   jetfleet pipeline test --json examples/ > results.json`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "update", Usage: "write each case's outputs to its golden file instead of comparing them"},
			&cli.BoolFlag{Name: "json", Usage: "print the results as one JSON document (for CI)"},
			&cli.DurationFlag{Name: "timeout", Usage: "longest a case may run (a case's timeout: overrides it)", Value: testrun.DefaultTimeout},
			&cli.StringFlag{Name: "run", Usage: "run only cases whose name contains this"},
			&cli.BoolFlag{Name: "keep", Usage: "keep each case's data dir (printed) to look into with jetfleet query --data-dir, or to start from with --data-dir"},
			&cli.StringFlag{Name: "data-dir", Usage: "start each case from a copy of this data dir (a kept one, or a jetfleet dev one not in use) instead of an empty one"},
			&cli.StringFlag{Name: "log-level", Usage: "the fleet's log level (logs go to stderr)", Value: "error"},
			&cli.StringFlag{Name: "log-format", Usage: "json or console"},
		},
		Action: runPipelineTest,
	}
}

// testReport is the --json document.
type testReport struct {
	Passed  int              `json:"passed"`
	Failed  int              `json:"failed"`
	Results []testrun.Result `json:"results"`
}

func runPipelineTest(c *cli.Context) error {
	if c.NArg() > 1 {
		return usagef(c, "want at most one FILE or DIR, got %d arguments", c.NArg())
	}
	target := c.Args().First()
	if target == "" {
		target = "."
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	paths, err := testrun.Find(target)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	var files []*testrun.File
	var problems []string
	for _, p := range paths {
		f, err := testrun.Load(p)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		files = append(files, f)
	}
	if len(problems) > 0 {
		return cli.Exit(strings.Join(problems, "\n"), 1)
	}
	r := testrun.New(testrun.Config{Logger: log, Version: version, Timeout: c.Duration("timeout"), Update: c.Bool("update"), CaseFilter: c.String("run"), Keep: c.Bool("keep"), DataDir: c.String("data-dir")})
	var rep testReport
	w := c.App.Writer
	for _, f := range files {
		rep.Results = append(rep.Results, r.RunFile(c.Context, f, func(res testrun.Result) {
			if c.Bool("json") {
				return
			}
			_, _ = fmt.Fprint(w, res.Text())
		})...)
	}
	for _, res := range rep.Results {
		if res.Passed {
			rep.Passed++
		} else {
			rep.Failed++
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		_, _ = fmt.Fprintf(w, "%d passed, %d failed\n", rep.Passed, rep.Failed)
	}
	if rep.Failed > 0 {
		return cli.Exit("", 1)
	}
	return nil
}
