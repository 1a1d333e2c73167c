// Command a8-sidecar is `a8 sidecar` alone: the same flags, environment and behaviour, built
// without the registry, the controller, the demo and the catalogs' servers. It is the binary to
// put beside every instance: about 27 MB instead of a8's 45, and about 6 MiB less resident memory
// (the pages of code and data a process maps and touches at start).
//
//	a8-sidecar --register --proxy --service reviews:version=v2 --endpoint_port 9080 ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/a8fabric/a8/internal/sidecar/sidecarcmd"
	"github.com/a8fabric/a8/internal/sidecar/supervise"
)

func main() {
	// As PID 1 (in a container), the sidecar runs as a child of a reaper of orphaned processes.
	if handled, code := supervise.RunAsInit(); handled {
		os.Exit(code)
	}
	err := sidecarcmd.Run(context.Background(), os.Args[1:], os.Stderr)
	var code sidecarcmd.ExitCode
	switch {
	case err == nil:
	case errors.As(err, &code):
		os.Exit(int(code))
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "a8-sidecar:", err)
		os.Exit(2)
	}
}
