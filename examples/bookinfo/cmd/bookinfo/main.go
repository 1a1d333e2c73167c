// Command bookinfo runs one service of Amalgam8's bookinfo example (see package bookinfo):
//
//	bookinfo --service productpage|details|reviews|ratings [--version v1|v2|v3] [--port 9080] [--proxy http://127.0.0.1:6379]
//
// SIGINT and SIGTERM stop it gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/a8fabric/a8/examples/bookinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := bookinfo.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp): // -h: the usage is printed
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
