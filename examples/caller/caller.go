// Package caller is a sample service for resilience tests: every request it gets, it passes on to
// one dependency through its a8 sidecar, with the client-side resilience you configure, so that a
// recipe can show whether that resilience holds up:
//
//   - --retries N --backoff D: retry a failed call up to N times, waiting D between attempts (a
//     caller with --backoff 0 hammers a failing dependency, which bounded_retries catches);
//   - --breaker_failures N --breaker_reset D: a circuit breaker that opens after N consecutive
//     failed calls, answers at once without calling while open, and lets one trial call through
//     after D (which circuit_breaker checks);
//   - --timeout D: the deadline of each call.
//
// It forwards X-Request-ID and the Cookie header, as services behind a8 must for rules and recipes
// to follow a request. GET /health answers 200. The a8 binary embeds it as "a8 example caller".
package caller

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Options configure a caller.
type Options struct {
	Port            int
	Target          string // URL of the dependency, through the sidecar: http://localhost:6379/helloworld/hello
	Retries         int
	Backoff         time.Duration
	BreakerFailures int // 0: no circuit breaker
	BreakerReset    time.Duration
	Timeout         time.Duration
}

// Run parses args and serves until ctx ends.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("caller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.IntVar(&o.Port, "port", 5100, "port to listen on")
	fs.StringVar(&o.Target, "target", "", "URL of the dependency, through the sidecar (http://localhost:6379/<service>/<path>)")
	fs.IntVar(&o.Retries, "retries", 0, "retries of a failed call")
	fs.DurationVar(&o.Backoff, "backoff", 0, "wait between attempts")
	fs.IntVar(&o.BreakerFailures, "breaker_failures", 0, "consecutive failed calls that open the circuit breaker (0: no breaker)")
	fs.DurationVar(&o.BreakerReset, "breaker_reset", 5*time.Second, "how long the breaker stays open before a trial call")
	fs.DurationVar(&o.Timeout, "timeout", 3*time.Second, "deadline of each call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Target == "" {
		return errors.New("caller: --target is required")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(o.Port)))
	if err != nil {
		return fmt.Errorf("caller: %w", err)
	}
	srv := &http.Server{Handler: New(o), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(stderr, "caller: ", 0)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stdout, "caller listening on %s, calling %s\n", ln.Addr(), o.Target)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("caller: %w", err)
	}
	return nil
}

// Caller is the service's handler.
type Caller struct {
	o      Options
	client *http.Client

	mu       sync.Mutex
	failures int       // consecutive failed calls
	openedAt time.Time // zero: closed
	trial    bool      // a half-open trial call is under way
}

// New returns the handler for o.
func New(o Options) *Caller {
	return &Caller{o: o, client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}}
}

func (c *Caller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		fmt.Fprintln(w, "ok")
		return
	}
	if !c.allow() {
		http.Error(w, "circuit open: not calling the dependency", http.StatusServiceUnavailable)
		return
	}
	body, err := c.callWithRetries(r)
	c.done(err == nil)
	if err != nil {
		http.Error(w, "dependency failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write(body)
}

// allow reports whether a call may go out: always with the breaker closed; once the reset time has
// passed, one trial call at a time while it is half-open.
func (c *Caller) allow() bool {
	if c.o.BreakerFailures <= 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.openedAt.IsZero() {
		return true
	}
	if time.Since(c.openedAt) < c.o.BreakerReset || c.trial {
		return false
	}
	c.trial = true
	return true
}

// done records the outcome of a call.
func (c *Caller) done(ok bool) {
	if c.o.BreakerFailures <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	wasTrial := c.trial
	c.trial = false
	switch {
	case ok:
		c.failures, c.openedAt = 0, time.Time{}
	case wasTrial:
		c.openedAt = time.Now() // the trial failed: open again
	default:
		c.failures++
		if c.failures >= c.o.BreakerFailures {
			c.openedAt = time.Now()
		}
	}
}

func (c *Caller) callWithRetries(r *http.Request) ([]byte, error) {
	var err error
	for attempt := 0; attempt <= c.o.Retries; attempt++ {
		if attempt > 0 && c.o.Backoff > 0 {
			select {
			case <-time.After(c.o.Backoff):
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
		var body []byte
		if body, err = c.call(r); err == nil {
			return body, nil
		}
	}
	return nil, err
}

func (c *Caller) call(in *http.Request) ([]byte, error) {
	ctx, cancel := context.WithTimeout(in.Context(), c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.o.Target, nil)
	if err != nil {
		return nil, err
	}
	for _, h := range []string{"X-Request-Id", "Cookie"} {
		if v := in.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 500 {
		return nil, fmt.Errorf("%s answered %d", c.o.Target, resp.StatusCode)
	}
	return body, nil
}
