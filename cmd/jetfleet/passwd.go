package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"
)

// bcryptCost is what nats-server's own tooling uses; a connection checks it
// once, so a slow hash costs nothing at run time.
const bcryptCost = 11

func passwdCommand() *cli.Command {
	return &cli.Command{
		Name:  "passwd",
		Usage: "hash a password for the server config (bcrypt), or make up a new one",
		Description: `Reads a password from stdin (one line) and prints its bcrypt hash, the form a
nats-server config stores (scripts/secure/nats.conf, docs/security.md). With
--generate it makes up a random password and prints it, then its hash: give the
password to the process of the role, the hash to the server.

   jetfleet passwd --generate
   printf '%s' "$PASSWORD" | jetfleet passwd`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "generate", Usage: "make up a random password (printed on the first line)"},
		},
		Action: runPasswd,
	}
}

func runPasswd(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef(c, "the password is read from stdin, not from arguments (they show in ps and shell history)")
	}
	var pw string
	if c.Bool("generate") {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		pw = base64.RawURLEncoding.EncodeToString(b)
		fmt.Fprintln(c.App.Writer, pw)
	} else {
		line, err := bufio.NewReader(c.App.Reader).ReadString('\n')
		pw = strings.TrimRight(line, "\r\n")
		if pw == "" {
			if err != nil && !errors.Is(err, io.EOF) {
				return cli.Exit(fmt.Sprintf("read password: %v", err), 1)
			}
			return usagef(c, "no password on stdin (or use --generate)")
		}
	}
	if len(pw) < 12 {
		return usagef(c, "password shorter than 12 characters")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	if err != nil {
		return cli.Exit(fmt.Sprintf("hash: %v", err), 1)
	}
	fmt.Fprintln(c.App.Writer, string(hash))
	return nil
}
