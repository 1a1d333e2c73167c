// Package helloworld is Amalgam8's helloworld example service in Go: GET /hello answers with its
// version and instance, GET /health with 200. Run it beside an a8 sidecar:
//
//	a8 sidecar --register --service helloworld:version=v1 --endpoint_port 5000 \
//	    --healthchecks http://localhost:5000/health -- helloworld --port 5000 --version v1
//
// The a8 binary embeds it too (a8 example helloworld ...), which is how a8 demo runs it.
package helloworld

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Run serves helloworld until ctx ends. args: --port (env PORT, default 5000), --version (env
// VERSION, default v1).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("helloworld", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", envInt("PORT", 5000), "port to listen on (env PORT)")
	version := fs.String("version", envStr("VERSION", "v1"), "version to report (env VERSION)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	instance := envStr("HOSTNAME", "localhost") + ":" + strconv.Itoa(*port)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello version: version=%s, instance: %s\n", *version, instance)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(stderr, "helloworld: ", 0)}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("helloworld: %w", err)
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stdout, "helloworld version %s listening on %s\n", *version, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("helloworld: %w", err)
	}
	return nil
}

func envStr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}
