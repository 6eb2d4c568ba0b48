// Command jetfleet runs a data pipeline as a fleet of workers on NATS
// JetStream: everything in one process (`jetfleet dev`) or step by step.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// A write past a file size limit (ulimit -f) then fails with EFBIG,
	// which the aggregator reports and waits out, instead of killing the
	// process with SIGXFSZ.
	signal.Ignore(syscall.SIGXFSZ)
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	err := app.Run(args)
	if err == nil {
		return 0
	}
	code := 1
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	if msg := err.Error(); msg != "" {
		if !strings.HasPrefix(msg, "jetfleet") {
			msg = "jetfleet: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
	}
	return code
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "jetfleet",
		Usage:   "run a data pipeline as a fleet of workers on NATS JetStream",
		Version: version,
		Description: `jetfleet moves records through ingest -> validate -> transform -> aggregate steps,
each a worker with a durable JetStream consumer, and builds Parquet data marts with DuckDB.

Start everything on this machine:   jetfleet dev --demo
Send records:                       jetfleet publish --file orders.ndjson jf.ingest.orders
See what the fleet does:            jetfleet status

Connection flags (--nats, --creds) go after the command name and before its arguments;
NATS_URL sets the server for every command.`,
		Flags:                logFlags(),
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			devCommand(),
			publishCommand(),
			workerCommand(),
			statusCommand(),
			supervisorCommand(),
			dlqCommand(),
			ctlCommand(), queryCommand(), profileCommand(),
			pipelineCommand(), lookupCommand(), benchCommand(),
			alertsCommand(),
			serverCommand(),
			passwdCommand(),
			setupCommand(), securityCommand(),
			versionCommand(),
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(os.Stderr, "jetfleet: unknown command %q (see jetfleet --help)\n", name)
			os.Exit(2)
		},
		OnUsageError:   usageError,
		ExitErrHandler: func(*cli.Context, error) {}, // run() prints and exits
	}
	for _, cmd := range app.Commands {
		setUsageErrors(cmd)
	}
	return app
}

// usageError turns flag errors into exit code 2 with one line.
func usageError(c *cli.Context, err error, _ bool) error {
	name := "jetfleet"
	if c != nil && c.Command != nil && c.Command.Name != "" {
		name += " " + c.Command.FullName()
	}
	return cli.Exit(fmt.Sprintf("%s: %v (see %s --help)", name, err, name), 2)
}

func setUsageErrors(cmd *cli.Command) {
	cmd.OnUsageError = usageError
	for _, sub := range cmd.Subcommands {
		setUsageErrors(sub)
	}
}

// usagef reports a missing or bad argument: exit 2, one line.
func usagef(c *cli.Context, format string, args ...any) error {
	return cli.Exit(fmt.Sprintf("%s: %s (see %s --help)", c.Command.HelpName, fmt.Sprintf(format, args...), c.Command.HelpName), 2)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprintln(c.App.Writer, "jetfleet", version)
			return err
		},
	}
}
