// Command a8 runs a8's servers: the registry, the controller, both at once (up), and, as they land,
// the sidecar and the demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/a8fabric/a8/internal/version"
)

const usage = `a8 is a microservice routing fabric: registry, controller, sidecar.

Usage:
  a8 <command> [flags]

Commands:
  up           run the registry and the controller in one process, embedded stores
  registry     run the multi-tenant service registry (Amalgam8 registry API)
  controller   run the multi-tenant rules controller (Amalgam8 controller API)
  version      print the version

Run "a8 <command> --help" for a command's flags. Every flag can also be set with the
environment variable A8_<FLAG_IN_UPPER_CASE>, for example --store_address as A8_STORE_ADDRESS.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "a8:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "up":
		return runUp(ctx, args[1:], stderr)
	case "registry":
		return runRegistry(ctx, args[1:], stderr)
	case "controller":
		return runController(ctx, args[1:], stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "a8", version.String())
		return nil
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
