// Command a8ctl is a8's command-line client, with the commands of both generations of Amalgam8's
// a8ctl: rule-create, rule-update, rule-get, rule-delete, route-list, action-list, info and
// recipe-run (1.x), and service-list, route-set, route-delete, action-add, action-clear,
// traffic-start, traffic-step and traffic-abort (0.x). Run "a8ctl help" for the list; the
// implementation is package internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/a8fabric/a8/internal/cli"
)

func main() {
	// The first Ctrl-C cancels the request in flight (or a read of stdin) and a8ctl exits saying
	// so; after it the default handling is back, so a second one kills a8ctl at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
