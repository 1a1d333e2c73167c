package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// listen opens the API port.
func listen(port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, fmt.Errorf("listen on --api_port %d: %w", port, err)
	}
	return ln, nil
}

// serve serves h on ln and runs background loops until ctx ends, then drains blocking queries and
// shuts down gracefully.
func serve(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler, drain func(), loops ...func(context.Context) error) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// No WriteTimeout: blocking queries legitimately hold a response for up to 5 minutes.
	}
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	errc := make(chan error, len(loops)+1)
	for _, loop := range loops {
		go func() { errc <- loop(loopCtx) }()
	}
	go func() { errc <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	log.Info("shutting down")
	drain()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("shutdown: %w", serr)
	}
	return err
}
