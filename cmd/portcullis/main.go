// Command portcullis is the Portcullis authorization server and its admin
// CLI: serve, migrate, clients, users and keys. The README lists every
// command and flag.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "portcullis: "+explain(err))
		os.Exit(1)
	}
}
