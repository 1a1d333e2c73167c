package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/httpapi"
)

// TestDotNamesDeleteNothingElse is the bug of `a8ctl action-clear ..`: DELETE
// /v1/rules/actions/.. was redirected to DELETE /v1/rules, every rule. a8ctl refuses the name, and
// the server refuses the path from any client.
func TestDotNamesDeleteNothingElse(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	f.ok("", "rule-create", "-f", examples+"bookinfo-default-route-rules.yaml")
	f.ok("", "rule-create", "-f", examples+"bookinfo-jason-7s-delay.yaml")
	before := len(f.rules(client.RuleFilter{}))

	for _, args := range [][]string{
		{"route-delete", ".."}, {"action-clear", ".."}, {"route-delete", "."}, {"action-clear", "."},
		{"route-set", "..", "--default", "v1"},
	} {
		f.fails(ExitUsage, []string{`"` + args[1] + `" is not a service name`}, "", args...)
	}
	// An older client that sends the path as it is: 400, no redirect.
	for _, target := range []string{"/v1/rules/actions/..", "/v1/rules/routes/..", "/v1/rules/routes/x/../..", "/api/v1/instances/.."} {
		req, err := http.NewRequest(http.MethodDelete, f.url+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body api.ControllerError
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || err != nil || body.Error != httpapi.CodeInvalidPath {
			t.Errorf("DELETE %s: %d %+v %v, want 400 %s", target, resp.StatusCode, body, err, httpapi.CodeInvalidPath)
		}
	}
	if n := len(f.rules(client.RuleFilter{})); n != before {
		t.Fatalf("%d rules left of %d", n, before)
	}
}

// TestRedirectsOfChangesNotFollowed: a8ctl follows a redirect of a read only.
func TestRedirectsOfChangesNotFollowed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/moved/"):
			code := http.StatusTemporaryRedirect
			if r.Method == http.MethodPost {
				code = http.StatusMovedPermanently // Go's client would follow it as a GET
			}
			http.Redirect(w, r, strings.TrimPrefix(r.URL.Path, "/moved"), code)
		case r.URL.Path == "/v1/rules/routes/reviews":
			http.Redirect(w, r, "/v1/rules", http.StatusTemporaryRedirect)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"rules": [], "ids": []}`)
		}
	}))
	t.Cleanup(srv.Close)
	requests := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}

	r := run("", "--controller_url", srv.URL, "route-delete", "reviews")
	checkFailure(t, r, ExitFailure, "a8ctl route-delete: deleting the route rules of reviews: the controller at "+srv.URL+
		" answered DELETE "+srv.URL+"/v1/rules/routes/reviews with a redirect (307) to "+srv.URL+"/v1/rules, which a8ctl does not follow")
	if got := requests(); len(got) != 1 {
		t.Errorf("requests %v, want the DELETE alone", got)
	}
	r = run("", "--controller_url", srv.URL+"/moved", "rule-create", "-f", examples+"helloworld-default-route-rules.json")
	checkFailure(t, r, ExitFailure, "answered POST "+srv.URL+"/moved/v1/rules with a redirect (301) to "+srv.URL+"/v1/rules, which a8ctl does not follow",
		"set --controller_url or A8_CONTROLLER_URL to its URL")
	if got := requests(); len(got) != 1 {
		t.Errorf("requests %v, want the POST alone", got)
	}
	// A read follows.
	r = run("", "--controller_url", srv.URL+"/moved", "rule-get", "-a", "-o", "json")
	if r.code != ExitOK || got(requests()) != "GET /moved/v1/rules, GET /v1/rules" {
		t.Errorf("rule-get through a redirect: %v", r)
	}
}

func got(requests []string) string { return strings.Join(requests, ", ") }

// hangingServer accepts connections and never answers.
func hangingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	url := hangingServer(t)
	start := time.Now()
	r := run("", "--controller_url", url, "--timeout", "200ms", "rule-get", "-a")
	checkFailure(t, r, ExitFailure, "a8ctl rule-get: getting the rules: the controller at "+url+" did not answer in time (within 200ms: --timeout or A8_TIMEOUT; set --controller_url or A8_CONTROLLER_URL to use another)")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	r = run("", "--registry_url", url, "service-list", "--timeout=150ms")
	checkFailure(t, r, ExitFailure, "listing the services: the registry at "+url+" did not answer in time (within 150ms")
	checkFailure(t, run("", "--timeout", "0s", "info"), ExitUsage, "--timeout must be more than 0, got 0s")
	checkFailure(t, run("", "--timeout", "soon", "info"), ExitUsage, `invalid value "soon" for flag -timeout`)
}

// TestUsageErrors: values a8ctl cannot send are usage errors (exit 2), and nothing is sent.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	f.register("reviews", "v1")
	tests := []struct {
		args []string
		want string
	}{
		// NaN and the infinities.
		{[]string{"route-set", "reviews", "--default", "v1", "--selector", "v2(weight=NaN)"}, "Invalid --selector value: v2(weight=NaN) (weight NaN must be in (0, 1]"},
		{[]string{"route-set", "reviews", "--default", "v1", "--selector", "v2(weight=+Inf)"}, "weight +Inf must be in (0, 1]"},
		{[]string{"action-add", "--destination", "reviews", "--source", "a", "--action", "v1(NaN->delay=1)"}, "probability NaN must be in (0, 1]"},
		{[]string{"action-add", "--destination", "reviews", "--source", "a", "--action", "v1(1->delay=NaN)"}, `delay "NaN" is not a positive number of seconds`},
		{[]string{"action-add", "--destination", "reviews", "--source", "a", "--action", "v1(1->delay=Inf)"}, `delay "Inf" is not a positive number of seconds`},
		{[]string{"action-add", "--destination", "reviews", "--source", "a", "--action", "v1(-Inf->abort=500)"}, "probability -Inf must be in (0, 1]"},
		// Empty versions and patterns.
		{[]string{"action-add", "--destination", "reviews", "--source", "a", "--action", ",(1->delay=1)"}, `version "," has no tags`},
		{[]string{"action-add", "--destination", "reviews", "--header", "X:", "--action", "v1(1->delay=1)"}, `--header "X:": the pattern after the colon is empty`},
		{[]string{"route-set", "reviews", "--default", ","}, `--default "," has no tags: a version is one or more tags`},
		{[]string{"route-set", "reviews", "--default", "v1", "--selector", `v2(header="X:")`}, "the header pattern is empty"},
		{[]string{"traffic-start", "reviews", " , "}, `the version " , " has no tags`},
		{[]string{"rule-delete", ""}, "an empty rule id"},
	}
	for _, tt := range tests {
		f.fails(ExitUsage, []string{tt.want}, "", tt.args...)
	}
	if n := len(f.rules(client.RuleFilter{})); n != 0 {
		t.Errorf("%d rules stored", n)
	}
}

// TestActionAddKeepsConcurrentRules: a rule another client adds while action-add runs is kept
// (action-add used to PUT back the destination's action rules as it had read them).
func TestActionAddKeepsConcurrentRules(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	var other *client.Controller
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.URL.Path)
			c := other
			mu.Unlock()
			h.ServeHTTP(w, r)
			if c != nil && r.Method == http.MethodGet && r.URL.Path == "/v1/rules/actions" {
				// Another a8ctl adds its rule between this one's read and write.
				_, err := c.CreateRules(r.Context(), []api.Rule{{ID: "meanwhile", Destination: "ratings", Priority: 30,
					Match: &api.Match{Source: &api.Source{Name: "other"}}, Actions: []api.Action{{Action: api.ActionTrace}}}})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	f := newWrappedFabric(t, nil, wrap)
	f.ok("", "rule-create", "-f", examples+"bookinfo-jason-7s-delay.yaml") // ratings, priority 10
	mu.Lock()
	other, seen = f.ctl, nil
	mu.Unlock()

	f.ok("", "action-add", "--destination", "ratings", "--source", "productpage", "--action", "v1(1->abort=503)")
	rs := f.ruleList("ratings")
	ids := map[string]int{}
	for _, r := range rs {
		ids[r.ID] = r.Priority
	}
	if len(rs) != 3 || ids["meanwhile"] != 30 || ids["bookinfo-jason-7s-delay"] != 10 {
		t.Fatalf("ratings rules %s: want the 7s delay, the one added meanwhile (GET, POST: %v), and the new one", jsonOf(t, rs), seen)
	}
	// The new rule: priority 10 above the highest the read saw, written alone.
	if p := rs[1].Priority; p != 20 || rs[1].Actions[0].Action != api.ActionAbort {
		t.Errorf("new rule %s", jsonOf(t, rs[1]))
	}
	mu.Lock()
	requests := got(seen)
	other, seen = nil, nil
	mu.Unlock()
	if !strings.HasPrefix(requests, "GET /v1/rules/actions, POST /v1/rules") || strings.Contains(requests, "PUT") {
		t.Errorf("requests %s, want GET /v1/rules/actions then POST /v1/rules", requests)
	}
	// With --priority, nothing is read.
	f.ok("", "action-add", "--destination", "ratings", "--source", "details", "--action", "v1(1->delay=1)", "--priority", "3")
	mu.Lock()
	requests = got(seen)
	mu.Unlock()
	if requests != "POST /v1/rules" {
		t.Errorf("requests with --priority: %s", requests)
	}
}

func TestActionAddTrace(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	f.ok("", "action-add", "--destination", "ratings", "--source", "reviews:v2", "--action", "v1(trace)")
	rs := f.ruleList("ratings")
	if len(rs) != 1 || len(rs[0].ID) != 36 {
		t.Fatalf("rules %s", jsonOf(t, rs))
	}
	want := `[{"action":"trace","tags":["v1"],"log_key":"gremlin_recipe_id","log_value":"` + rs[0].ID + `"}]`
	if g := jsonOf(t, rs[0].Actions); g != want {
		t.Errorf("actions %s, want %s", g, want)
	}
	// A given value, with a fault after it.
	f.ok("", "action-add", "--destination", "details", "--header", "X-Test:yes", "--action", "v2(trace=run-7)", "--action", "v2(0.5->delay=1)")
	rs = f.ruleList("details")
	want = `[{"action":"trace","tags":["v2"],"log_key":"gremlin_recipe_id","log_value":"run-7"},{"action":"delay","duration":1,"probability":0.5,"tags":["v2"]}]`
	if len(rs) != 1 || jsonOf(t, rs[0].Actions) != want {
		t.Errorf("rules %s", jsonOf(t, rs))
	}
	if r := f.ok("", "action-list", "-d", "details", "--json"); !strings.Contains(r.stdout, `"v2(trace)",`) {
		t.Errorf("action-list:\n%s", r.stdout)
	}
}

func TestTraceRuleIDs(t *testing.T) {
	id := func() string { return "new-id" }
	a := []api.Action{{Action: api.ActionTrace}, {Action: api.ActionDelay, Duration: 1}, {Action: api.ActionTrace, LogValue: "given"}}
	r := traceRuleIDs(api.Rule{Actions: a}, id)
	if r.ID != "new-id" || r.Actions[0].LogValue != "new-id" || r.Actions[2].LogValue != "given" || a[0].LogValue != "" {
		t.Errorf("got %s (input %s)", jsonOf(t, r), jsonOf(t, a))
	}
	if r := traceRuleIDs(api.Rule{Actions: a[1:]}, id); r.ID != "" {
		t.Errorf("an id without a trace to fill: %s", jsonOf(t, r))
	}
	if got := newRuleID(); len(got) != 36 || got[14] != '4' || got == newRuleID() {
		t.Errorf("newRuleID %s", got)
	}
}

func TestOlderFlags(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	f.register("helloworld", "v1")
	// Amalgam8 1.x's Gremlin flags: taken, ignored, one line of note.
	r := run("", "--gremlin_url", "http://gremlin:9876", "rule-get", "-a", "--gremlin_token", "g", "--controller_url", f.url, "-o", "json")
	if r.code != ExitOK || r.stdout != "{\n  \"rules\": []\n}\n" ||
		r.stderr != "a8ctl: note: --gremlin_token (A8_GREMLIN_TOKEN), --gremlin_url (A8_GREMLIN_URL) ignored: a8 serves resilience recipes from its controller, without a Gremlin service or log server\n" {
		t.Errorf("gremlin flags: %v", r)
	}
	// The Python a8ctl's flag names; --a8-log-server ignored.
	trusted := newFabric(t, auth.Trusted())
	r = run("", "--a8-controller-url", trusted.url, "--a8-controller-token", "team-a", "--a8-log-server", "localhost:30200",
		"rule-create", "-f", examples+"helloworld-default-route-rules.json")
	if r.code != ExitOK || r.stderr != "a8ctl: note: --a8-log-server ignored: a8 serves resilience recipes from its controller, without a Gremlin service or log server\n" {
		t.Errorf("--a8-controller-url: %v", r)
	}
	r = run("", "--a8-registry-url", trusted.url, "--a8-registry-token", "team-a", "service-list", "-o", "json")
	if r.code != ExitOK || r.stdout != "[]\n" {
		t.Errorf("--a8-registry-url, --a8-registry-token: %v", r)
	}
	r = run("", "--a8-controller-url", trusted.url, "rule-get", "-a")
	checkFailure(t, r, ExitFailure, "the controller answered 401")
	py := []string{"--a8-controller-url", f.url, "--a8-registry-url", f.url}
	// --json is -o json.
	for _, cmd := range []string{"service-list", "route-list", "action-list"} {
		r := run("", append(py, cmd, "--json")...)
		want := run("", append(py, cmd, "-o", "json")...)
		if r.code != ExitOK || r.stderr != "" || r.stdout != want.stdout || !strings.HasPrefix(r.stdout, "[") {
			t.Errorf("%s --json: %v\nwant\n%v", cmd, r, want)
		}
	}
	if r := run("", append(py, "service-list", "--json")...); !strings.Contains(r.stdout, `"helloworld"`) {
		t.Errorf("service-list --json with the Python flags: %v", r)
	}
	// rule-delete <id>... is -i.
	f.ok("", "rule-create", "-f", examples+"bookinfo-default-route-rules.yaml")
	r = run("", append(py, "rule-delete", "details-default", "ratings-default")...)
	if r.code != ExitOK || r.stdout != "Request Completed\n" {
		t.Errorf("rule-delete <id>...: %v", r)
	}
	r = f.ok("", "rule-get", "-a", "-o", "json")
	if strings.Contains(r.stdout, "details-default") || strings.Contains(r.stdout, "ratings-default") || !strings.Contains(r.stdout, "reviews-default") {
		t.Errorf("after rule-delete <id>...: %s", r.stdout)
	}
	checkFailure(t, f.a8ctl("", "rule-delete", "-a", "x"), ExitUsage, "-a deletes every rule: give it alone")
	// The help names them in one line, not one by one.
	r = run("", "help")
	if !strings.Contains(r.stdout, "The Python a8ctl's --a8-controller-url") || strings.Contains(r.stdout, "[A8_A8_") || strings.Contains(r.stdout, "  --gremlin_url") {
		t.Errorf("help:\n%s", r.stdout)
	}
	if r := run("", "help", "service-list"); !strings.Contains(r.stdout, "--json\n      the same as -o json") {
		t.Errorf("help service-list:\n%s", r.stdout)
	}
}

// TestNullStdinIsNoTerminal: /dev/null is a character device but no terminal, so a8ctl does not
// prompt for rules when stdin is /dev/null (a script's, cron's).
func TestNullStdinIsNoTerminal(t *testing.T) {
	t.Parallel()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(null) {
		t.Fatal("isTerminal(/dev/null)")
	}
	var out, errb strings.Builder
	code := Main(context.Background(), []string{"rule-create"}, null, &out, &errb)
	checkFailure(t, result{out.String(), errb.String(), code}, ExitUsage, "no rules on stdin")
	if strings.Contains(errb.String(), "Enter the rules") {
		t.Errorf("prompted:\n%s", errb.String())
	}
}

// TestUsageErrorKeepsTheChain: a usage error made from another error still is that error.
func TestUsageErrorKeepsTheChain(t *testing.T) {
	e := &env{g: &globals{controllerURL: "localhost:8080", registryURL: "ftp://x"}}
	_, cerr := e.controller()
	_, want := client.NewController(client.ControllerConfig{URL: "localhost:8080"})
	_, rerr := e.registry()
	_, wantReg := client.NewRegistry(client.RegistryConfig{URL: "ftp://x"})
	for _, c := range []struct{ err, want error }{{cerr, want}, {rerr, wantReg}} {
		var ue *usageError
		if !errors.As(c.err, &ue) {
			t.Fatalf("%v is no usage error", c.err)
		}
		found := false
		for err := c.err; err != nil; err = errors.Unwrap(err) {
			found = found || err.Error() == c.want.Error()
		}
		if !found {
			t.Errorf("%v does not wrap %q", c.err, c.want)
		}
	}
	wrapped := usagef("reading: %w", io.ErrUnexpectedEOF)
	if !errors.Is(wrapped, io.ErrUnexpectedEOF) || wrapped.Error() != "reading: unexpected EOF" {
		t.Errorf("usagef %%w: %v", wrapped)
	}
}

// The tests below set environment variables, so they do not run in parallel.

func TestOlderFlagsFromTheEnvironment(t *testing.T) {
	f := newFabric(t, nil)
	t.Setenv("A8_GREMLIN_URL", "http://gremlin:9876")
	r := f.a8ctl("", "rule-get", "-a", "-o", "json")
	if r.code != ExitOK || r.stderr != "a8ctl: note: --gremlin_url (A8_GREMLIN_URL) ignored: a8 serves resilience recipes from its controller, without a Gremlin service or log server\n" {
		t.Errorf("A8_GREMLIN_URL: %v", r)
	}
}

func TestTimeoutFromTheEnvironment(t *testing.T) {
	url := hangingServer(t)
	t.Setenv("A8_TIMEOUT", "100ms")
	r := run("", "--controller_url", url, "route-delete", "reviews")
	checkFailure(t, r, ExitFailure, "did not answer in time (within 100ms")
	if r := run("", "info"); !strings.Contains(r.stdout, "| A8_TIMEOUT          | 100ms ") {
		t.Errorf("info:\n%s", r.stdout)
	}
	// More than the Go client's own bound: the bound is what the message says.
	t.Setenv("A8_TIMEOUT", "1m")
	e := &env{g: &globals{timeout: time.Minute}}
	if s := e.controllerServer(); s.timeout != client.DefaultTimeout {
		t.Errorf("timeout %v", s.timeout)
	}
}
