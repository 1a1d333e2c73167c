package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/a8fabric/a8/client"
)

// server names one of the two servers a8ctl talks to, for its error messages.
type server struct {
	kind    string // "controller" or "registry"
	url     string
	urlFlag string        // the flag that sets its URL
	timeout time.Duration // how long a8ctl waits for an answer
}

func (e *env) controllerServer() server {
	return server{kind: "controller", url: e.g.controllerURL, urlFlag: "controller_url", timeout: e.g.requestTimeout()}
}

func (e *env) registryServer() server {
	return server{kind: "registry", url: e.g.registryURL, urlFlag: "registry_url", timeout: e.g.requestTimeout()}
}

// requestTimeout is how long a request may take: --timeout, within the Go client's own bound.
func (g *globals) requestTimeout() time.Duration {
	return min(g.timeout, client.DefaultTimeout)
}

// controller returns a client of the controller.
func (e *env) controller() (*client.Controller, error) {
	c, err := client.NewController(client.ControllerConfig{
		URL: e.g.controllerURL, Token: e.g.controllerToken, Namespace: e.g.namespace, HTTPClient: e.hc,
	})
	if err != nil {
		return nil, usagef("%w (set --controller_url or A8_CONTROLLER_URL)", err)
	}
	return c, nil
}

// registry returns a client of the registry.
func (e *env) registry() (*client.Registry, error) {
	c, err := client.NewRegistry(client.RegistryConfig{URL: e.g.registryURL, Token: e.g.registryToken, HTTPClient: e.hc})
	if err != nil {
		return nil, usagef("%w (set --registry_url or A8_REGISTRY_URL)", err)
	}
	return c, nil
}

// remoteError is a failed call to a server, with what a8ctl was doing.
type remoteError struct {
	srv   server
	doing string // "creating the rules"
	err   error
}

func (e *remoteError) Error() string { return describeRemote(e) }
func (e *remoteError) Unwrap() error { return e.err }

// ctlErr wraps an error of a call to the controller (nil stays nil).
func (e *env) ctlErr(doing string, err error) error {
	if err == nil {
		return nil
	}
	return &remoteError{srv: e.controllerServer(), doing: doing, err: err}
}

// regErr wraps an error of a call to the registry (nil stays nil).
func (e *env) regErr(doing string, err error) error {
	if err == nil {
		return nil
	}
	return &remoteError{srv: e.registryServer(), doing: doing, err: err}
}

// describeRemote says what went wrong in words a person can act on: which server could not be
// reached and how to point a8ctl elsewhere, or what the server answered (for rejected rules, each
// problem with its field path on its own line).
func describeRemote(e *remoteError) string {
	env := "A8_" + strings.ToUpper(e.srv.urlFlag)
	var se *client.StatusError
	var ue *url.Error
	var re *redirectError
	switch {
	case errors.Is(e.err, context.Canceled):
		return fmt.Sprintf("%s: interrupted", e.doing)
	case errors.As(e.err, &se):
		return describeStatus(e, se)
	case errors.As(e.err, &re):
		return fmt.Sprintf("%s: the %s at %s answered %s with a redirect (%d) to %s, which a8ctl does not follow: a %s sent to another URL could act on other rules or instances (if the %s has moved, set --%s or %s to its URL)",
			e.doing, e.srv.kind, e.srv.url, re.method+" "+re.from, re.code, re.to, re.method, e.srv.kind, e.srv.urlFlag, env)
	case errors.Is(e.err, context.DeadlineExceeded), errors.As(e.err, &ue) && ue.Timeout():
		return fmt.Sprintf("%s: the %s at %s did not answer in time (within %v: --timeout or A8_TIMEOUT; set --%s or %s to use another)",
			e.doing, e.srv.kind, e.srv.url, e.srv.timeout, e.srv.urlFlag, env)
	case errors.As(e.err, &ue):
		return fmt.Sprintf("%s: cannot reach the %s at %s: %v (is a8 up running? set --%s or %s)",
			e.doing, e.srv.kind, e.srv.url, ue.Err, e.srv.urlFlag, env)
	}
	return fmt.Sprintf("%s: %v", e.doing, e.err)
}

func describeStatus(e *remoteError, se *client.StatusError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the %s answered %d", e.doing, e.srv.kind, se.Code)
	if se.ErrorID != "" {
		fmt.Fprintf(&b, " (%s)", se.ErrorID)
	}
	msg := se.Message
	if msg == "" {
		msg = http.StatusText(se.Code)
	}
	if rest, ok := strings.CutPrefix(msg, "invalid rules: "); ok {
		b.WriteString(": invalid rules:")
		for _, p := range splitProblems(rest) {
			fmt.Fprintf(&b, "\n  %s", p)
		}
	} else {
		fmt.Fprintf(&b, ": %s", msg)
	}
	switch se.Code {
	case http.StatusUnauthorized:
		tok := "controller_token"
		if e.srv.kind == "registry" {
			tok = "registry_token"
		}
		fmt.Fprintf(&b, " (set --%s or A8_%s)", tok, strings.ToUpper(tok))
	case http.StatusNotFound:
		// a8's own 404s name what is missing (error_rule_not_found, error_recipe_not_found); any
		// other is a wrong URL.
		if se.ErrorID != "error_rule_not_found" && se.ErrorID != errRecipeNotFound {
			fmt.Fprintf(&b, " (is %s an a8 %s? set --%s)", e.srv.url, e.srv.kind, e.srv.urlFlag)
		}
	}
	return b.String()
}

// splitProblems splits the controller's "rules[0].x: why; rules[1].y: why" into its problems.
func splitProblems(s string) []string {
	parts := strings.Split(s, "; rules[")
	for i := 1; i < len(parts); i++ {
		parts[i] = "rules[" + parts[i]
	}
	return parts
}

// report prints a command's error and returns the exit code for it.
func report(stderr io.Writer, name string, err error) int {
	var ue *usageError
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "a8ctl %s: interrupted\n", name)
		return ExitFailure
	}
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "a8ctl %s: %v\nRun 'a8ctl %s --help' for its flags.\n", name, err, name)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "a8ctl %s: %v\n", name, err)
	return ExitFailure
}

// newHTTPClient returns the client of both servers: each request, its answer read, may take
// timeout; redirects are followed for GET and HEAD only; with debug it logs every exchange to w.
func newHTTPClient(debug bool, w io.Writer, timeout time.Duration) *http.Client {
	var rt http.RoundTripper = http.DefaultTransport
	if debug {
		rt = &debugTransport{next: rt, w: w}
	}
	return &http.Client{Transport: rt, Timeout: timeout, CheckRedirect: checkRedirect}
}

// maxRedirects is how many redirects a GET or HEAD follows (http.Client's default).
const maxRedirects = 10

// checkRedirect follows the redirects of reads only. Go's client follows a 307 or 308 with the
// same method and body, and a 301, 302 or 303 of a DELETE as a GET: either way a request that
// changes something would reach a URL a8ctl did not choose. A server that redirects DELETE
// /v1/rules/actions/.. to /v1/rules would have a8ctl delete every rule.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	if first.Method != http.MethodGet && first.Method != http.MethodHead {
		re := &redirectError{method: first.Method, from: first.URL.String(), to: req.URL.String()}
		if req.Response != nil {
			re.code = req.Response.StatusCode
		}
		return re
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	return nil
}

// redirectError is a redirect of a request other than a read, not followed.
type redirectError struct {
	method, from, to string
	code             int
}

func (e *redirectError) Error() string {
	return fmt.Sprintf("%s %s was redirected (%d) to %s: not followed, a %s could act on another resource", e.method, e.from, e.code, e.to, e.method)
}

// debugTransport writes each request and answer, curl-like, to w (--debug). Tokens are masked.
type debugTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	w    io.Writer
}

// maxDebugBody bounds how much of a body --debug shows.
const maxDebugBody = 16 << 10

func (d *debugTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "> %s %s\n", req.Method, req.URL)
	for _, k := range sortedKeys(req.Header) {
		v := strings.Join(req.Header[k], ", ")
		if k == "Authorization" {
			v = maskAuthorization(v)
		}
		fmt.Fprintf(&b, "> %s: %s\n", k, v)
	}
	if req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			data, _ := io.ReadAll(io.LimitReader(body, maxDebugBody))
			body.Close()
			fmt.Fprintf(&b, "> %s\n", data)
		}
	}
	start := time.Now()
	resp, err := d.next.RoundTrip(req)
	if err != nil {
		fmt.Fprintf(&b, "< error after %v: %v\n", time.Since(start).Round(time.Millisecond), err)
		d.write(b.String())
		return nil, err
	}
	data, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	fmt.Fprintf(&b, "< %s (%v)\n", resp.Status, time.Since(start).Round(time.Millisecond))
	if len(data) > 0 {
		shown := data
		if len(shown) > maxDebugBody {
			shown = shown[:maxDebugBody]
		}
		fmt.Fprintf(&b, "< %s\n", bytes.TrimRight(shown, "\n"))
	}
	d.write(b.String())
	if rerr != nil {
		return nil, rerr
	}
	return resp, nil
}

func (d *debugTransport) write(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	io.WriteString(d.w, s)
}

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func maskAuthorization(v string) string {
	scheme, _, ok := strings.Cut(v, " ")
	if !ok {
		return "****"
	}
	return scheme + " ****"
}

// maskToken hides a token in the info table, keeping whether it is set.
func maskToken(t string) string {
	if t == "" {
		return ""
	}
	return "********"
}
