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

	"github.com/a8fabric/a8/internal/sidecar/supervise"
	"github.com/a8fabric/a8/internal/version"
)

const usage = `a8 is a microservice routing fabric: registry, controller, sidecar.

Usage:
  a8 <command> [flags]

Commands:
  demo         run everything: a8 up, helloworld and bookinfo behind sidecars, a gateway
  up           run the registry and the controller in one process, embedded stores
  registry     run the multi-tenant service registry (Amalgam8 registry API)
  controller   run the multi-tenant rules controller (Amalgam8 controller API)
  sidecar      run beside an app: register it, route its calls, supervise it
  version      print the version

Run "a8 <command> --help" for a command's flags. Every flag can also be set with the
environment variable A8_<FLAG_IN_UPPER_CASE>, for example --store_address as A8_STORE_ADDRESS.
`

func main() {
	// As PID 1 (in a container), the sidecar runs as a child of a reaper of orphaned processes.
	if len(os.Args) > 1 && os.Args[1] == "sidecar" {
		if handled, code := supervise.RunAsInit(); handled {
			os.Exit(code)
		}
	}
	ctx, stop := context.Background(), func() {}
	if len(os.Args) < 2 || os.Args[1] != "sidecar" { // the sidecar handles its signals itself
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	}
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var code exitCode
	switch {
	case err == nil:
	case errors.As(err, &code):
		os.Exit(int(code))
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "a8:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "example": // the example apps, embedded for a8 demo
		return runExample(ctx, args[1:], stdout, stderr)
	case "up":
		return runUp(ctx, args[1:], stderr)
	case "registry":
		return runRegistry(ctx, args[1:], stderr)
	case "controller":
		return runController(ctx, args[1:], stderr)
	case "sidecar":
		return runSidecar(ctx, args[1:], stderr)
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
