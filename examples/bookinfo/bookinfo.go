// Package bookinfo is Amalgam8's bookinfo example in Go: four services that show a book.
//
//   - productpage (GET /productpage for people, GET /api/v1/products/{id} as JSON) calls details and
//     reviews;
//   - details (GET /details/{id}) answers the book's details;
//   - reviews (GET /reviews/{id}) answers two reviews: v1 without ratings, v2 with black stars and v3
//     with red stars, both from ratings;
//   - ratings (GET /ratings/{id}) answers each reviewer's stars.
//
// Every service answers GET /health. One binary runs any of them (--service); each runs beside an a8
// sidecar and calls the others through that sidecar's proxy, as <proxy>/<service>/<path>, so the
// sidecar's rules decide which instances answer:
//
//	a8 sidecar --register --service reviews:version=v2 --endpoint_port 9080 \
//	    --healthchecks http://localhost:9080/health --proxy -- \
//	    bookinfo --service reviews --version v2 --port 9080 --proxy http://127.0.0.1:6379
//
// The services forward the Cookie and X-Request-ID headers of the request they serve to the calls they
// make (productpage makes up an X-Request-ID when there is none), so rules that match the user=jason
// cookie apply all along the chain and the sidecars' request records of one page load share one id.
// The a8 binary embeds bookinfo too (a8 example bookinfo ...), which is how a8 demo runs it.
package bookinfo

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// options are Run's knobs that are not flags: the timeouts of calls and shutdown, and test hooks.
type options struct {
	detailsTimeout  time.Duration // productpage → details, one attempt
	reviewsTimeout  time.Duration // productpage → reviews, per attempt
	reviewsAttempts int
	ratingsTimeout  time.Duration // reviews v2/v3 → ratings
	shutdownGrace   time.Duration // how long requests in flight may finish after ctx ends
	host            string        // listen host ("" = all interfaces)
	getenv          func(string) string
	ready           func(addr net.Addr) // called once listening
}

// defaultOptions are Amalgam8's bookinfo's numbers: productpage gives details 3 s and reviews 3 s
// twice; reviews gives ratings 10 s.
func defaultOptions() options {
	return options{
		detailsTimeout:  3 * time.Second,
		reviewsTimeout:  3 * time.Second,
		reviewsAttempts: 2,
		ratingsTimeout:  10 * time.Second,
		shutdownGrace:   10 * time.Second,
		getenv:          os.Getenv,
	}
}

// Run runs one bookinfo service until ctx ends. args are flags:
//
//	--service productpage|details|reviews|ratings   (required)
//	--version v1|v2|v3                              (reviews: which one; others: reported only; default v1)
//	--port N                                        (listen port; default 9080; env PORT)
//	--proxy URL                                     (this instance's sidecar proxy; default http://127.0.0.1:6379; env A8_PROXY_URL)
//
// It writes one start line to stdout and one line per request to stderr (method, path, status,
// duration, request id). When ctx ends it stops accepting connections, lets requests in flight finish
// (for up to 10 s, then cancels their calls) and returns nil.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return run(ctx, args, stdout, stderr, defaultOptions())
}

// config is what the flags say.
type config struct {
	service string
	version string
	port    int
	proxy   string // without a trailing slash
}

var services = []string{"productpage", "details", "reviews", "ratings"}

func parseConfig(args []string, stderr io.Writer, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("bookinfo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := 9080
	if p := getenv("PORT"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return config{}, fmt.Errorf("bookinfo: env PORT=%q: not a port number", p)
		}
		port = n
	}
	proxy := "http://127.0.0.1:6379"
	if p := getenv("A8_PROXY_URL"); p != "" {
		proxy = p
	}
	var c config
	fs.StringVar(&c.service, "service", "", "the service to run: "+strings.Join(services, ", ")+" (required)")
	fs.StringVar(&c.version, "version", "v1", "the version: reviews v1 (no ratings), v2 (black stars) or v3 (red stars); others report it only")
	fs.IntVar(&c.port, "port", port, "port to listen on (env PORT)")
	fs.StringVar(&c.proxy, "proxy", proxy, "URL of this instance's a8 sidecar proxy, through which it calls other services (env A8_PROXY_URL)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bookinfo --service productpage|details|reviews|ratings [flags]\n\nRuns one service of Amalgam8's bookinfo example.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("bookinfo: unexpected arguments %q", fs.Args())
	}
	switch c.service {
	case "":
		return config{}, fmt.Errorf("bookinfo: --service is required: one of %s", strings.Join(services, ", "))
	case "productpage", "details", "reviews", "ratings":
	default:
		return config{}, fmt.Errorf("bookinfo: --service %q: must be one of %s", c.service, strings.Join(services, ", "))
	}
	switch {
	case c.service == "reviews" && c.version != "v1" && c.version != "v2" && c.version != "v3":
		return config{}, fmt.Errorf("bookinfo: --version %q: reviews is v1, v2 or v3", c.version)
	case c.version == "" || strings.ContainsAny(c.version, " \t\r\n"):
		return config{}, fmt.Errorf("bookinfo: --version %q: must be a word such as v1", c.version)
	}
	if c.port < 0 || c.port > 65535 {
		return config{}, fmt.Errorf("bookinfo: --port %d: must be 0 to 65535", c.port)
	}
	u, err := url.Parse(c.proxy)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return config{}, fmt.Errorf("bookinfo: --proxy %q: must be an http or https URL such as http://127.0.0.1:6379", c.proxy)
	}
	c.proxy = strings.TrimRight(c.proxy, "/")
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, opts options) error {
	cfg, err := parseConfig(args, stderr, opts.getenv)
	if err != nil {
		return err
	}
	// Calls to other services go to the local sidecar only: never through an HTTP_PROXY of the
	// environment.
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // each call has its own deadline
	}
	defer transport.CloseIdleConnections()

	logger := log.New(stderr, "", log.LstdFlags|log.Lmicroseconds)
	a := &app{cfg: cfg, opts: opts, client: &http.Client{Transport: transport}, log: logger}
	handler := a.routes()

	ln, err := net.Listen("tcp", net.JoinHostPort(opts.host, strconv.Itoa(cfg.port)))
	if err != nil {
		return fmt.Errorf("bookinfo: %w", err)
	}
	// Requests in flight live on base, not on ctx: they finish after ctx ends, unless the grace runs out.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           a.track(handler),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          log.New(stderr, cfg.service+" "+cfg.version+": http: ", log.LstdFlags),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	fmt.Fprintf(stdout, "bookinfo %s %s listening on %s, calling other services through %s\n", cfg.service, cfg.version, ln.Addr(), cfg.proxy)
	if opts.ready != nil {
		opts.ready(ln.Addr())
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		a.drain()
		return fmt.Errorf("bookinfo: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.shutdownGrace)
	err = srv.Shutdown(sctx)
	cancel()
	if err != nil {
		// Grace is over: abort the calls of the requests still in flight, and their connections.
		cancelBase()
		_ = srv.Close()
	}
	<-served // http.ErrServerClosed
	a.drain()
	return nil
}

// app is one running service.
type app struct {
	cfg    config
	opts   options
	client *http.Client
	log    *log.Logger

	mu       sync.Mutex
	draining bool
	inflight sync.WaitGroup
}

// track counts the requests in flight so that Run returns (and logs) only after the last one.
func (a *app) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if a.draining {
			a.mu.Unlock()
			w.Header().Set("Connection", "close")
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		a.inflight.Add(1)
		a.mu.Unlock()
		defer a.inflight.Done()
		next.ServeHTTP(w, r)
	})
}

// drain waits for the requests in flight and refuses new ones.
func (a *app) drain() {
	a.mu.Lock()
	a.draining = true
	a.mu.Unlock()
	a.inflight.Wait()
}

// routes is the service's handler: its own endpoints and /health, each request logged.
func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
	})
	switch a.cfg.service {
	case "details":
		mux.HandleFunc("GET /details/{id}", a.details)
	case "ratings":
		mux.HandleFunc("GET /ratings/{id}", a.ratings)
	case "reviews":
		mux.HandleFunc("GET /reviews/{id}", a.reviews)
	case "productpage":
		mux.HandleFunc("GET /productpage", a.productPage)
		mux.HandleFunc("GET /api/v1/products/{id}", a.productAPI)
		mux.HandleFunc("POST /login", a.login)
		mux.HandleFunc("GET /logout", a.logout)
	}
	return a.logRequests(mux, a.cfg.service == "productpage")
}
