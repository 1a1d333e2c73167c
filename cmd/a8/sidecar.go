package main

import (
	"context"
	"io"

	"github.com/a8fabric/a8/internal/sidecar/sidecarcmd"
)

// exitCode asks main to exit with a code of its own (a supervised app's).
type exitCode = sidecarcmd.ExitCode

func runSidecar(ctx context.Context, args []string, stderr io.Writer) error {
	return sidecarcmd.Run(ctx, args, stderr)
}
