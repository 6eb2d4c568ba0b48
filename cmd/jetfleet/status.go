package main

import "github.com/urfave/cli/v2"

// statusCommand is being written by the supervisor work; this placeholder
// keeps the binary building meanwhile.
func statusCommand() *cli.Command {
	return &cli.Command{Name: "status", Usage: "show what the fleet is doing", Flags: commonFlags()}
}
