package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/a8fabric/a8/examples/bookinfo"
	"github.com/a8fabric/a8/examples/caller"
	"github.com/a8fabric/a8/examples/helloworld"
	"github.com/a8fabric/a8/internal/demo"
	"github.com/a8fabric/a8/internal/flagenv"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("a8 demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiPort := fs.Int("api_port", 8080, "port of a8 up (registry and controller)")
	gatewayPort := fs.Int("gateway_port", 32000, "port of the gateway sidecar, the demo's entry point")
	dataDir := fs.String("data_dir", "", "directory for rules and logs (default: a temporary one, removed at the end)")
	fs.Usage = flagenv.Usage(fs, "A8_DEMO_", "Usage: a8 demo [flags]\n\nRuns a8 up, helloworld v1/v2 and bookinfo behind registering sidecars, and a gateway; Ctrl-C stops it all.")
	if err := flagenv.Parse(fs, args, "A8_DEMO_"); err != nil {
		return err
	}
	return demo.Run(ctx, demo.Options{APIPort: *apiPort, GatewayPort: *gatewayPort, DataDir: *dataDir, Stdout: stdout, Stderr: stderr})
}

// runExample runs an example app embedded in the a8 binary (what a8 demo starts).
func runExample(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("a8 example: name an example: helloworld, bookinfo or caller")
	}
	switch args[0] {
	case "helloworld":
		return helloworld.Run(ctx, args[1:], stdout, stderr)
	case "bookinfo":
		return bookinfo.Run(ctx, args[1:], stdout, stderr)
	case "caller":
		return caller.Run(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("a8 example %q: the examples are helloworld, bookinfo and caller", args[0])
}
