package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Result is the outcome of one run of a check.
type Result struct {
	// Check is the check that ran, with defaults applied.
	Check Check `json:"check"`
	// Healthy is whether the check passed.
	Healthy bool `json:"healthy"`
	// Err says why the check failed, e.g. "GET http://localhost:9080/health: status 503, want 200";
	// empty when it passed.
	Err string `json:"error,omitempty"`
	// At is when the run started; zero for a check that has not run yet.
	At time.Time `json:"at"`
	// Duration is how long the run took.
	Duration time.Duration `json:"duration"`
}

// Limits of one run.
const (
	// maxDrain bounds how much of an HTTP response body is read before the connection is closed.
	maxDrain = 64 << 10
	// maxOutput bounds how much of a command's output is kept for the failure message.
	maxOutput = 256
	// waitDelay bounds how long a command's output pipes are read after it exited or was killed
	// (a background child may hold them open).
	waitDelay = time.Second
)

// Run runs c once, with defaults applied, bounded by its timeout and by ctx.
//
// http and https: a request with Method to Value, healthy iff the status is Code (redirects are not
// followed, the body is drained and closed, no proxy is used and no connection is reused). tcp: a
// connection to Value, healthy iff it is established. file: the command Value with Args (no
// shell), healthy iff its exit status is Code; a command still running at the timeout is killed
// with its whole process group. An invalid check is reported unhealthy with the reason.
func Run(ctx context.Context, c Check) Result {
	p, err := newProber(c)
	if err != nil {
		now := time.Now()
		return Result{Check: c.WithDefaults(), Err: err.Error(), At: now}
	}
	defer p.close()
	return p.run(ctx)
}

// prober runs one validated check repeatedly, reusing its HTTP client.
type prober struct {
	check  Check
	client *http.Client // http and https only
}

// newProber validates c (after applying defaults) and prepares it to run.
func newProber(c Check) (*prober, error) {
	c = c.WithDefaults()
	pool, err := validate(c)
	if err != nil {
		return nil, err
	}
	p := &prober{check: c}
	if c.Type == TypeHTTP || c.Type == TypeHTTPS {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil              // the app is beside us: never go through HTTP_PROXY
		tr.DisableKeepAlives = true // every run proves that a new connection can be made
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		p.client = &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return p, nil
}

// close releases the prober's idle connections.
func (p *prober) close() {
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
}

// run runs the check once.
func (p *prober) run(ctx context.Context) Result {
	c := p.check
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var err error
	switch c.Type {
	case TypeHTTP, TypeHTTPS:
		err = p.runHTTP(ctx)
	case TypeTCP:
		err = runTCP(ctx, c)
	case TypeFile:
		err = runFile(ctx, c)
	default:
		err = fmt.Errorf("%s: unknown type", c)
	}
	r := Result{Check: c, Healthy: err == nil, At: start, Duration: time.Since(start)}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// runHTTP requests the check's URL and compares the status with the expected code.
func (p *prober) runHTTP(ctx context.Context) error {
	c := p.check
	req, err := http.NewRequestWithContext(ctx, c.Method, c.Value, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	req.Header.Set("User-Agent", "a8-sidecar-healthcheck")
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %s", c, ctxReason(ctx, c.Timeout, "no response"))
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s: %w", c, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	if resp.StatusCode != c.Code {
		return fmt.Errorf("%s: status %d, want %d", c, resp.StatusCode, c.Code)
	}
	return nil
}

// runTCP connects to the check's address.
func runTCP(ctx context.Context, c Check) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Value)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %s", c, ctxReason(ctx, c.Timeout, "no connection"))
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return fmt.Errorf("%s: %w", c, err)
	}
	_ = conn.Close()
	return nil
}

// runFile runs the check's command in its own process group and compares its exit status with the
// expected code. At the timeout (or when ctx ends) the whole group is killed.
func runFile(ctx context.Context, c Check) error {
	cmd := exec.CommandContext(ctx, c.Value, c.Args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// With Setpgid the group id is the leader's pid; kill the group so that children the
		// command started do not outlive it.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay
	out := &capBuffer{max: maxOutput}
	cmd.Stdout = out
	cmd.Stderr = out
	err := cmd.Run()
	if ctx.Err() != nil && (err != nil || cmd.ProcessState == nil || !cmd.ProcessState.Exited()) {
		return fmt.Errorf("%s: %s; killed its process group", c, ctxReason(ctx, c.Timeout, "still running"))
	}
	if cmd.ProcessState == nil {
		// It never started: not found, not executable, ...
		return fmt.Errorf("%s: %w", c, err)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return fmt.Errorf("%s: killed by signal %s, want exit status %d%s", c, ws.Signal(), c.Code, out.suffix())
	}
	if code := cmd.ProcessState.ExitCode(); code != c.Code {
		return fmt.Errorf("%s: exit status %d, want %d%s", c, code, c.Code, out.suffix())
	}
	// The exit status is right; an error left is exec.ErrWaitDelay (a background child held the
	// output open) or a failure to kill an already finished group: neither makes the check fail.
	return nil
}

// ctxReason explains why ctx ended: the check's timeout, or cancellation by the caller.
func ctxReason(ctx context.Context, timeout time.Duration, what string) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("%s within the %s timeout", what, timeout)
	}
	return what + " when the check was cancelled"
}

// capBuffer keeps the first max bytes written to it and discards the rest.
type capBuffer struct {
	buf bytes.Buffer
	max int
}

// Write implements io.Writer; it never fails.
func (b *capBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// suffix returns the output collapsed to one line, as a suffix of a failure message ("" if none).
func (b *capBuffer) suffix() string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(b.buf.String(), "?")), " ")
	if s == "" {
		return ""
	}
	return "; output: " + s
}
