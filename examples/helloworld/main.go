// Command helloworld is Amalgam8's helloworld example service in Go: GET /hello answers with its
// version and instance, GET /health with 200. Run it beside an a8 sidecar:
//
//	a8 sidecar --register --service helloworld:version=v1 --endpoint_port 5000 \
//	    --healthchecks http://localhost:5000/health -- helloworld --port 5000 --version v1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", envInt("PORT", 5000), "port to listen on (env PORT)")
	version := flag.String("version", envStr("VERSION", "v1"), "version to report (env VERSION)")
	flag.Parse()
	instance := envStr("HOSTNAME", "localhost") + ":" + strconv.Itoa(*port)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello version: version=%s, instance: %s\n", *version, instance)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(*port)))
	if err != nil {
		log.Fatalf("helloworld: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("helloworld version %s listening on %s", *version, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("helloworld: %v", err)
	}
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
