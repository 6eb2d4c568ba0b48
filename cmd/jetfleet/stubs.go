package main

import "github.com/urfave/cli/v2"

func devCommand() *cli.Command     { return &cli.Command{Name: "dev"} }
func publishCommand() *cli.Command { return &cli.Command{Name: "publish"} }
func workerCommand() *cli.Command  { return &cli.Command{Name: "worker"} }
