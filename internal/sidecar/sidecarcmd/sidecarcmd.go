// Package sidecarcmd is the sidecar's command line, shared by `a8 sidecar` and the a8-sidecar
// command (the sidecar alone, without the control plane linked in).
package sidecarcmd

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/a8fabric/a8/internal/logging"
	"github.com/a8fabric/a8/internal/sidecar"
	"github.com/a8fabric/a8/internal/sidecar/config"
	"github.com/a8fabric/a8/internal/version"
)

// ExitCode asks main to exit with a code of its own (a supervised app's).
type ExitCode int

func (e ExitCode) Error() string { return "exit " + strconv.Itoa(int(e)) }

// Run runs the sidecar with args (its flags) until it stops: on SIGINT or SIGTERM, or when a
// supervised app exits (then with an ExitCode error carrying the app's code when it is not 0).
// Other signals go to the supervised app.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := config.Load(args, stderr)
	if err != nil {
		return err
	}
	log, err := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	log = log.With("version", version.String())
	s, err := sidecar.New(cfg, log)
	if err != nil {
		return err
	}
	// SIGINT and SIGTERM stop the sidecar, which deregisters and then passes the signal on to the
	// app; other signals go to the app at once.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGINT || sig == syscall.SIGTERM {
					s.Stop(sig)
				} else {
					s.Signal(sig)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	code, err := s.Run(ctx)
	if err != nil {
		return err
	}
	if code != 0 {
		return ExitCode(code)
	}
	return nil
}
