package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/resilience"
)

// The example recipe: bookinfo with a 7s delay from reviews:version=v2 to ratings:version=v1, and
// four checks on the calls along the way.
const (
	recipeExamples  = "../../examples/recipes/"
	bookinfoTopo    = recipeExamples + "bookinfo-topology.json"
	bookinfoGremlin = recipeExamples + "bookinfo-gremlins.json"
	bookinfoChecks  = recipeExamples + "bookinfo-checks.json"
)

// recipeTestTimeout bounds each run and the sidecar's wait for the recipe.
const recipeTestTimeout = 20 * time.Second

// runRecipe runs a8ctl recipe-run against the fabric with ctx and stdin.
func (f *fabric) runRecipe(ctx context.Context, stdin io.Reader, args ...string) result {
	var out, errb bytes.Buffer
	code := Main(ctx, append([]string{"--controller_url", f.url, "recipe-run"}, args...), stdin, &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// sidecarRun is what the simulated sidecars saw of a recipe while it ran.
type sidecarRun struct {
	recipe api.Recipe
	tagged int // the rules tagged with the recipe's id
	err    error
}

// sidecars stands in for the sidecars of the test: once a recipe runs, it counts the rules tagged
// with its id, delivers records(id) to the controller as the sidecars would (if records is not
// nil), then calls then (if not nil). It gives up when ctx ends.
func (f *fabric) sidecars(ctx context.Context, records func(id string) []api.Record, then func()) <-chan sidecarRun {
	ch := make(chan sidecarRun, 1)
	go func() {
		var out sidecarRun
		defer func() { ch <- out }()
		if out.recipe, out.err = f.awaitRecipe(ctx); out.err != nil {
			return
		}
		id := out.recipe.ID
		list, _, err := f.ctl.GetRules(ctx, client.RuleFilter{Tags: []string{id}}, nil)
		if err != nil {
			out.err = fmt.Errorf("rules of recipe %s: %w", id, err)
			return
		}
		out.tagged = len(list.Rules)
		if records != nil {
			if err := f.ctl.DeliverRecords(ctx, api.RecordBatch{Records: records(id)}); err != nil {
				out.err = fmt.Errorf("delivering the records of recipe %s: %w", id, err)
				return
			}
		}
		if then != nil {
			then()
		}
	}()
	return ch
}

// awaitRecipe polls the controller until a recipe runs, and returns it; it fails when ctx ends.
func (f *fabric) awaitRecipe(ctx context.Context) (api.Recipe, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := f.ctl.Recipes(ctx)
		if err == nil && len(list) > 0 {
			return list[0], nil
		}
		select {
		case <-ctx.Done():
			return api.Recipe{}, fmt.Errorf("no recipe started: %w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// checkRecipeGone checks that recipe id, its rules and its records are deleted, and no recipe runs.
func (f *fabric) checkRecipeGone(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	var se *client.StatusError
	if _, err := f.ctl.Recipe(ctx, id); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("recipe %s after the run: want 404, got %v", id, err)
	}
	if _, err := f.ctl.RecipeRecords(ctx, id); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("records of recipe %s after the run: want 404, got %v", id, err)
	}
	if rs := f.rules(client.RuleFilter{}); len(rs) != 0 {
		t.Errorf("rules left after the run: %s", jsonOf(t, rs))
	}
	if list, err := f.ctl.Recipes(ctx); err != nil || len(list) != 0 {
		t.Errorf("recipes left after the run: %v %v", list, err)
	}
}

// bookinfoRecords are the records of one request through bookinfo, as the sidecars of the test
// deliver them under recipe id: all passing the example checks, or, with failing, too slow at the
// gateway (bounded_response_time) and reset between productpage and reviews (http_status).
func bookinfoRecords(id string, failing bool) []api.Record {
	gatewayTime, reviewsStatus := 3100.0, 200 // productpage gives up on reviews after 3s
	if failing {
		gatewayTime, reviewsStatus = 8200, 0
	}
	start := time.Now().UTC()
	rec := func(n int, src, dst string, status int, ms float64) api.Record {
		return api.Record{
			ID: fmt.Sprintf("sidecar-%d", n), StartTime: start.Add(time.Duration(n) * time.Millisecond), RequestTime: ms, UpstreamResponseTime: ms,
			Status: status, Src: src, Dst: dst, Method: "GET", Path: "/", RequestID: "test-1", ResponseFlags: "-", Attempts: 1,
			TraceKey: api.RecipeTraceKey, TraceValue: id,
		}
	}
	return []api.Record{
		rec(1, "gateway:version=none", "productpage:version=v1", 200, gatewayTime),
		rec(2, "productpage:version=v1", "details:version=v1", 200, 12),
		rec(3, "productpage:version=v1", "reviews:version=v2", reviewsStatus, 3000),
		rec(4, "reviews:version=v2", "ratings:version=v1", 200, 7010),
	}
}

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// passingJSON is the -o json output of the example checks, all passed: the checks as given, with
// "result": true and "errormsg": "".
func passingJSON(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(bookinfoChecks)
	if err != nil {
		t.Fatal(err)
	}
	l, err := resilience.DecodeChecklist(data)
	if err != nil {
		t.Fatal(err)
	}
	want := api.CheckResults{}
	for _, c := range l.Checks {
		want.Results = append(want.Results, api.CheckResult{Check: c, Result: true})
	}
	var b bytes.Buffer
	if err := writeJSON(&b, want); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const passingTable = `+-----------------------+------------------------+------------------------+--------+-------+
| Assertion             | Source                 | Destination            | Result | Error |
+-----------------------+------------------------+------------------------+--------+-------+
| bounded_response_time | gateway:version=none   | productpage:version=v1 | PASS   |       |
| http_status           | gateway:version=none   | productpage:version=v1 | PASS   |       |
| http_status           | productpage:version=v1 | reviews:version=v2     | PASS   |       |
| http_status           | reviews:version=v2     | ratings:version=v1     | PASS   |       |
+-----------------------+------------------------+------------------------+--------+-------+
`

func TestRecipeRunChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	script := writeFile(t, dir, "load.sh", fmt.Sprintf("echo \"load for $A8_RECIPE_ID with $A8_RECIPE_HEADER=$A8_RECIPE_PATTERN\"\necho ran > '%s'\n", marker))
	recipe := []string{"-t", bookinfoTopo, "-s", bookinfoGremlin, "-c", bookinfoChecks}

	tests := []struct {
		name    string
		args    []string
		failing bool // the records fail two checks
		// enter makes stdin a pipe on which the sidecars press Enter once they delivered the
		// records: with -w 0 the checks pass only if a8ctl waited for Enter.
		enter  bool
		code   int
		stdout func(t *testing.T, stdout string)
		stderr []string // in this order; %[1]s stands for the recipe id
		not    []string // not on stderr
	}{
		{
			name: "load script, table", args: []string{"-r", script},
			stdout: func(t *testing.T, got string) {
				if got != passingTable {
					t.Errorf("stdout:\n%s\nwant\n%s", got, passingTable)
				}
			},
			stderr: []string{
				"Recipe %[1]s started: 4 rules tagged %[1]s (header X-Request-ID, pattern *)\n",
				"Running the load script " + script + "...\n",
				"load for %[1]s with X-Request-ID=*\n",
				"Waiting up to 10s for the records of the test requests...\n",
				"Recipe %[1]s deleted, with its rules and records\n",
			},
			not: []string{"Inject test requests", "a8ctl recipe-run:"},
		},
		{
			name: "json", args: []string{"-f", "--output", "json"},
			stdout: func(t *testing.T, got string) {
				if want := passingJSON(t); got != want {
					t.Errorf("stdout:\n%s\nwant\n%s", got, want)
				}
				var doc map[string][]map[string]any
				if err := json.Unmarshal([]byte(got), &doc); err != nil || len(doc) != 1 || len(doc["results"]) != 4 {
					t.Fatalf("want exactly {\"results\": [4 results]}: %v\n%s", err, got)
				}
				if r := doc["results"][1]; r["result"] != true || r["errormsg"] != "" || r["name"] != "http_status" || fmt.Sprint(r["status"]) != "[200 302]" {
					t.Errorf("results[1]: %v", r)
				}
			},
			stderr: []string{"Recipe %[1]s started: 4 rules", "Waiting up to 10s", "Recipe %[1]s deleted"},
			not:    []string{"Inject test requests", "Running the load script"},
		},
		{
			name: "yaml", args: []string{"-f", "-o", "yaml"},
			stdout: func(t *testing.T, got string) {
				want := "results:\n  - name: bounded_response_time\n    source: gateway:version=none\n    dest: productpage:version=v1\n    max_latency: 7s\n    result: true\n    errormsg: \"\"\n"
				if !strings.HasPrefix(got, want) || strings.Count(got, "result: true") != 4 {
					t.Errorf("stdout:\n%s\nwant it to start\n%s", got, want)
				}
			},
			stderr: []string{"Recipe %[1]s deleted"},
		},
		{
			name: "failing checks", args: []string{"-f"}, failing: true, code: ExitFailure,
			stdout: func(t *testing.T, got string) {
				for _, want := range []string{
					"| bounded_response_time | gateway:version=none   | productpage:version=v1 | FAIL   | request test-1 took 8.2s, more than max_latency 7s (1 of 1 request took longer)",
					"| http_status           | gateway:version=none   | productpage:version=v1 | PASS   |",
					"| http_status           | productpage:version=v1 | reviews:version=v2     | FAIL   | connection reset (request test-1; expected 200; 1 of 1 request had another status) |",
				} {
					if !strings.Contains(got, want) {
						t.Errorf("stdout lacks %q:\n%s", want, got)
					}
				}
			},
			stderr: []string{"Waiting up to 10s", "Recipe %[1]s deleted, with its rules and records\n", "a8ctl recipe-run: 2 of 4 checks failed\n"},
		},
		{
			name: "Enter", args: []string{"-w", "0"}, enter: true,
			stdout: func(t *testing.T, got string) {
				if got != passingTable {
					t.Errorf("stdout:\n%s\nwant\n%s", got, passingTable)
				}
			},
			stderr: []string{
				"Recipe %[1]s started",
				"Inject test requests with HTTP header X-Request-ID matching the pattern *\nWhen done, press Enter key to continue to validation phase\n",
				"Checking the records of the test requests that have arrived (-w 0: not waiting for more)...\n",
				"Recipe %[1]s deleted",
			},
		},
		{
			name: "Enter, header and pattern", args: []string{"-w", "0", "-H", "Cookie", "-p", "user=jason"}, enter: true,
			stdout: func(t *testing.T, got string) {
				if got != passingTable {
					t.Errorf("stdout:\n%s\nwant\n%s", got, passingTable)
				}
			},
			stderr: []string{
				"Recipe %[1]s started: 4 rules tagged %[1]s (header Cookie, pattern user=jason)\n",
				"Inject test requests with HTTP header Cookie matching the pattern user=jason\n",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFabric(t, nil) // of this run alone: a recipe a failed run left behind cannot mislead the next
			os.Remove(marker)
			ctx, cancel := context.WithTimeout(context.Background(), recipeTestTimeout)
			defer cancel()
			var stdin io.Reader = strings.NewReader("")
			var then func()
			if tt.enter {
				pr, pw := io.Pipe()
				defer pw.Close()
				stdin = pr
				then = func() { io.WriteString(pw, "\n") }
			}
			seen := f.sidecars(ctx, func(id string) []api.Record { return bookinfoRecords(id, tt.failing) }, then)
			r := f.runRecipe(ctx, stdin, append(append(recipe, "-w", "10s"), tt.args...)...)
			cancel()
			sc := <-seen
			if sc.err != nil {
				t.Fatalf("sidecars: %v\n%v", sc.err, r)
			}
			id := sc.recipe.ID
			if r.code != tt.code {
				t.Fatalf("want exit %d: %v", tt.code, r)
			}
			tt.stdout(t, r.stdout)
			rest := r.stderr
			for _, w := range tt.stderr {
				w = strings.ReplaceAll(w, "%[1]s", id)
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("stderr lacks %q (or not in order):\n%s", w, r.stderr)
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.not {
				if strings.Contains(r.stderr, w) {
					t.Errorf("stderr has %q:\n%s", w, r.stderr)
				}
			}
			if sc.tagged != 4 || len(sc.recipe.RuleIDs) != 4 {
				t.Errorf("while the recipe ran: %d rules tagged %s, recipe rule ids %v; want 4", sc.tagged, id, sc.recipe.RuleIDs)
			}
			if _, err := os.Stat(marker); (err == nil) != slices.Contains(tt.args, "-r") {
				t.Errorf("the load script's marker: %v", err)
			}
			f.checkRecipeGone(t, id)
		})
	}
}

// awaitFile polls until path exists or ctx ends.
func awaitFile(ctx context.Context, path string) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// startedID returns the recipe id of the run's "Recipe <id> started" line.
func startedID(t *testing.T, r result) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^Recipe (\S+) started: `).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no recipe started: %v", r)
	}
	return m[1]
}

// readHook is a reader that calls hook each time it is read, before reading.
type readHook struct {
	r    io.Reader
	hook func()
}

func (h readHook) Read(p []byte) (int, error) {
	h.hook()
	return h.r.Read(p)
}

// Where TestRecipeRunFailures interrupts a run (Ctrl-C): each point is signalled by the run
// itself, so that the interrupt comes there and nowhere else, however slow the machine.
const (
	atCreate = "create" // when the creation of the recipe reaches the controller
	atPrompt = "prompt" // when a8ctl reads stdin, waiting for Enter
	inScript = "script" // when the load script has started sending
	atCheck  = "check"  // when the checks reach the controller
)

// TestRecipeRunFailures checks that a run that fails, or is interrupted, after the recipe was
// created still deletes it, and says which recipe and why it failed.
//
// Each run has a fabric of its own: nothing of one run can reach another, neither a recipe a
// failed run left behind nor a request of an interrupted run that the server handles late, after
// that run ended (a check request once took the "refuse the next checks" token of the run after).
func TestRecipeRunFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	failing := writeFile(t, dir, "failing.sh", "echo 'no load today' >&2\nexit 3\n")
	sending := filepath.Join(dir, "sending")
	slow := writeFile(t, dir, "slow.sh", fmt.Sprintf("echo sending > '%s'\nexec sleep 30\n", sending))
	withChecks := func(args ...string) []string { return append([]string{"-c", bookinfoChecks}, args...) }
	const started = "Recipe %[1]s started: 4 rules tagged %[1]s (header X-Request-ID, pattern *)\n"

	tests := []struct {
		name      string
		args      []string // after -t, -s and -w 10s
		stdin     string
		interrupt string // where the run is interrupted (Ctrl-C), if anywhere
		refuse    bool   // the controller refuses the checks
		stderr    []string
		not       []string
	}{
		{name: "load script fails", args: withChecks("-r", failing),
			stderr: []string{started, "Running the load script " + failing + "...\n", "no load today\n", "Recipe %[1]s deleted, with its rules and records\n",
				"a8ctl recipe-run: the load script " + failing + " failed (exit status 3), so the checks were not run"},
			not: []string{"Waiting up to"}},
		{name: "stdin ends before Enter", args: withChecks(), stdin: "",
			stderr: []string{started, "press Enter key", "Recipe %[1]s deleted",
				"a8ctl recipe-run: stdin ended before Enter was pressed, so the checks were not run: add -f to check without waiting for Enter, or -r to run a load script\n"},
			not: []string{"Waiting up to"}},
		{name: "Ctrl-C while creating", args: withChecks("-f"), interrupt: atCreate,
			stderr: []string{started, "Recipe %[1]s deleted, with its rules and records\n", "a8ctl recipe-run: interrupted\n"},
			not:    []string{"Waiting up to"}},
		{name: "Ctrl-C while creating, without checks", interrupt: atCreate,
			stderr: []string{started, "Recipe %[1]s deleted, with its rules and records\n", "a8ctl recipe-run: interrupted\n"},
			not:    []string{"Recipe created but not verified"}},
		{name: "Ctrl-C at the prompt", args: withChecks(), interrupt: atPrompt,
			stderr: []string{started, "press Enter key to continue to validation phase\n", "Recipe %[1]s deleted", "a8ctl recipe-run: interrupted\n"},
			not:    []string{"Waiting up to"}},
		{name: "Ctrl-C in the load script", args: withChecks("-r", slow), interrupt: inScript,
			stderr: []string{started, "Running the load script " + slow + "...\n", "Recipe %[1]s deleted", "a8ctl recipe-run: interrupted\n"},
			not:    []string{"Waiting up to"}},
		{name: "Ctrl-C while checking", args: withChecks("-f"), interrupt: atCheck,
			stderr: []string{started, "Waiting up to 10s", "Recipe %[1]s deleted", "a8ctl recipe-run: interrupted\n"}},
		{name: "checks refused", args: withChecks("-f"), refuse: true,
			stderr: []string{started, "Waiting up to 10s", "Recipe %[1]s deleted",
				"a8ctl recipe-run: checking recipe %[1]s: the controller answered 503 (error_internal): the records store is away\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), recipeTestTimeout)
			defer cancel()
			runCtx, interrupt := context.WithCancel(ctx)
			defer interrupt()
			f := newWrappedFabric(t, nil, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					create := r.Method == http.MethodPost && r.URL.Path == "/api/v1/recipes"
					check := r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/v1/recipes/")
					switch {
					case create && tt.interrupt == atCreate, check && tt.interrupt == atCheck:
						interrupt()
					case check && tt.refuse:
						w.Header().Set("Content-Type", "application/json")
						w.WriteHeader(http.StatusServiceUnavailable)
						io.WriteString(w, `{"error":"error_internal","description":"the records store is away"}`)
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			var stdin io.Reader = strings.NewReader(tt.stdin)
			if tt.interrupt != "" {
				pr, pw := io.Pipe() // nothing is ever typed
				defer pw.Close()
				stdin = pr
				if tt.interrupt == atPrompt {
					stdin = readHook{r: pr, hook: interrupt}
				}
			}
			watched := make(chan struct{})
			if tt.interrupt == inScript {
				os.Remove(sending)
				go func() {
					defer close(watched)
					awaitFile(runCtx, sending)
					interrupt()
				}()
			} else {
				close(watched)
			}
			r := f.runRecipe(runCtx, stdin, append([]string{"-t", bookinfoTopo, "-s", bookinfoGremlin, "-w", "10s"}, tt.args...)...)
			cancel()
			<-watched
			id := startedID(t, r)
			if r.code != ExitFailure || r.stdout != "" {
				t.Fatalf("want exit 1 and no stdout: %v", r)
			}
			rest := r.stderr
			for _, w := range tt.stderr {
				w = strings.ReplaceAll(w, "%[1]s", id)
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("stderr lacks %q (or not in order):\n%s", w, r.stderr)
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.not {
				if strings.Contains(r.stderr, w) {
					t.Errorf("stderr has %q:\n%s", w, r.stderr)
				}
			}
			f.checkRecipeGone(t, id)
		})
	}
}

// TestRecipeRunDeleteFails checks that a recipe the controller does not delete fails the run, even
// with every check passed, and that a8ctl says how to remove its rules.
func TestRecipeRunDeleteFails(t *testing.T) {
	t.Parallel()
	f := newWrappedFabric(t, nil, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodDelete {
				http.Error(w, "no deleting today", http.StatusInternalServerError)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), recipeTestTimeout)
	defer cancel()
	seen := f.sidecars(ctx, func(id string) []api.Record { return bookinfoRecords(id, false) }, nil)
	r := f.runRecipe(ctx, strings.NewReader(""), "-t", bookinfoTopo, "-s", bookinfoGremlin, "-c", bookinfoChecks, "-f", "-w", "10s")
	cancel()
	sc := <-seen
	if sc.err != nil {
		t.Fatalf("sidecars: %v\n%v", sc.err, r)
	}
	id := sc.recipe.ID
	if r.code != ExitFailure || r.stdout != passingTable {
		t.Fatalf("want exit 1 and the results: %v", r)
	}
	want := fmt.Sprintf("a8ctl recipe-run: deleting recipe %[1]s: the controller answered 500: no deleting today; its faults may still apply to test requests: remove its rules with a8ctl rule-delete -t %[1]s\n", id)
	if !strings.HasSuffix(r.stderr, want) || strings.Contains(r.stderr, "deleted, with its rules") {
		t.Errorf("stderr:\n%s\nwant it to end\n%s", r.stderr, want)
	}
	if n := len(f.rules(client.RuleFilter{Tags: []string{id}})); n != 4 {
		t.Errorf("%d rules tagged %s, want the 4 the controller kept", n, id)
	}
}

// TestRecipeRunWithoutChecks checks that without -c the recipe is left running, as Amalgam8 left
// it, with its id and how to end it.
func TestRecipeRunWithoutChecks(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	ctx := context.Background()
	for _, output := range []string{formatTable, formatJSON, formatYAML} {
		t.Run(output, func(t *testing.T) {
			r := f.runRecipe(ctx, strings.NewReader(""), "-t", bookinfoTopo, "-s", bookinfoGremlin, "-o", output, "-H", "Cookie", "-p", "user=jason")
			list, err := f.ctl.Recipes(ctx)
			if err != nil || len(list) != 1 {
				t.Fatalf("recipes %v %v after %v", list, err, r)
			}
			id := list[0].ID
			if r.code != ExitOK {
				t.Fatalf("want exit 0: %v", r)
			}
			msg := fmt.Sprintf("Recipe created but not verified. No checks file provided.\n"+
				"Recipe %[1]s is running: its faults apply to test requests until you remove its rules with a8ctl rule-delete -t %[1]s\n", id)
			started := fmt.Sprintf("Recipe %[1]s started: 4 rules tagged %[1]s (header Cookie, pattern user=jason)\n", id)
			switch output {
			case formatTable:
				if r.stdout != msg || r.stderr != started {
					t.Errorf("want stdout\n%s\nand stderr\n%s\ngot %v", msg, started, r)
				}
			case formatJSON:
				if want := fmt.Sprintf("{\n  \"recipe_id\": %q\n}\n", id); r.stdout != want || r.stderr != started+msg {
					t.Errorf("want stdout\n%s\nand stderr\n%s\ngot %v", want, started+msg, r)
				}
			case formatYAML:
				if want := fmt.Sprintf("recipe_id: %s\n", id); r.stdout != want {
					t.Errorf("want stdout %q, got %v", want, r)
				}
			}
			if n := len(f.rules(client.RuleFilter{Tags: []string{id}})); n != 4 {
				t.Errorf("%d rules tagged %s, want 4 left running", n, id)
			}
			// The way out the message gives.
			f.ok("", "rule-delete", "-t", id)
			if n := len(f.rules(client.RuleFilter{})); n != 0 {
				t.Errorf("%d rules left after rule-delete -t %s", n, id)
			}
			if err := f.ctl.DeleteRecipe(ctx, id); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRecipeRunBadInput checks that command lines and files recipe-run cannot run are refused,
// saying what and where, before anything is sent.
func TestRecipeRunBadInput(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	dir := t.TempDir()
	typo := writeFile(t, dir, "typo.yaml", "services:\n  - name: gateway\n  - nmae: productpage\n")
	dup := writeFile(t, dir, "dup.json", `{"services":[{"name":"a"},{"name":"a"}],"dependencies":{"a":["b"]}}`)
	stranger := writeFile(t, dir, "stranger.json", `{"gremlins":[{"scenario":"delay_requests","source":"reviews:version=v3","dest":"ratings:version=v1"}]}`)
	badDelay := writeFile(t, dir, "delay.yaml", "gremlins:\n- scenario: delay_requests\n  source: reviews:version=v2\n  delaytime: 7x\n")
	badCheck := writeFile(t, dir, "checks.json", `{"checks":[{"name":"http_status","source":"a","dest":"b","status":200},{"name":"http_status","source":"a","dest":"b","statuss":200}]}`)
	empty := writeFile(t, dir, "empty.json", "\n")
	topo, scen, checks := []string{"-t", bookinfoTopo}, []string{"-s", bookinfoGremlin}, []string{"-c", bookinfoChecks}
	join := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no files", nil, ExitUsage, []string{"a8ctl recipe-run: missing -t topology and -s scenarios: a recipe needs its topology file (-t) and its scenarios file (-s)", "Run 'a8ctl recipe-run --help'"}},
		{"no topology", join(scen, checks), ExitUsage, []string{"missing -t topology:"}},
		{"no scenarios", topo, ExitUsage, []string{"missing -s scenarios:"}},
		{"an argument", join(topo, scen, []string{"extra"}), ExitUsage, []string{`takes no arguments, got ["extra"]`}},
		{"bad output", join(topo, scen, []string{"-o", "xml"}), ExitUsage, []string{`-o: want table, json, yaml, got "xml"`}},
		{"negative wait", join(topo, scen, []string{"-w", "-1s"}), ExitUsage, []string{"-w must not be negative, got -1s"}},
		{"bad wait", join(topo, scen, []string{"-w", "soon"}), ExitUsage, []string{`want a duration such as 5s, got "soon"`}},
		{"bad header and pattern", join(topo, scen, []string{"-H", "Bad:Header", "-p", "(user"}), ExitUsage,
			[]string{"invalid recipe, nothing was sent:\n  -H: \"Bad:Header\" is not an HTTP header name\n  -p: \"(user\" is not a regular expression"}},
		{"topology typo", join([]string{"-t", typo}, scen), ExitFailure, []string{typo + ": topology: services[1].nmae: unknown field"}},
		{"topology duplicates", join([]string{"-t", dup}, scen), ExitFailure,
			[]string{dup + ": invalid topology:\n  services[1].name: \"a\" is also services[0]\n  dependencies.a[0]: \"b\" is not a service of the topology"}},
		{"gremlin of another topology", join(topo, []string{"-s", stranger}), ExitFailure,
			[]string{"invalid recipe, nothing was sent:\n  " + stranger + ": gremlins[0].source: \"reviews:version=v3\" is not a service of the topology"}},
		{"bad delay", join(topo, []string{"-s", badDelay}), ExitFailure, []string{badDelay + ": invalid scenarios:\n  gremlins[0].delaytime: \"7x\" is not a duration"}},
		{"bad check", join(topo, scen, []string{"-c", badCheck}), ExitFailure, []string{badCheck + ": checklist: checks[1].statuss: unknown parameter of http_status"}},
		{"empty checks", join(topo, scen, []string{"-c", empty}), ExitFailure, []string{empty + ": the file is empty (expected the checks, in JSON or YAML)"}},
		{"no such topology", join([]string{"-t", filepath.Join(dir, "nope.json")}, scen), ExitFailure, []string{"reading the topology: open " + filepath.Join(dir, "nope.json")}},
		{"no such load script", join(topo, scen, checks, []string{"-r", filepath.Join(dir, "nope.sh")}), ExitFailure, []string{"the load script (-r): stat " + filepath.Join(dir, "nope.sh")}},
		{"a directory for a load script", join(topo, scen, checks, []string{"-r", dir}), ExitFailure, []string{"the load script (-r) " + dir + " is a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.runRecipe(context.Background(), strings.NewReader(""), tt.args...)
			checkFailure(t, r, tt.code, tt.want...)
			if list, err := f.ctl.Recipes(context.Background()); err != nil || len(list) != 0 {
				t.Errorf("recipes after a refusal: %v %v", list, err)
			}
			if rs := f.rules(client.RuleFilter{}); len(rs) != 0 {
				t.Errorf("rules after a refusal: %s", jsonOf(t, rs))
			}
		})
	}
}

func TestRecipeRunUnreachableController(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	r := run("", "--controller_url", dead, "recipe-run", "-t", bookinfoTopo, "-s", bookinfoGremlin, "-c", bookinfoChecks, "-f")
	checkFailure(t, r, ExitFailure, "a8ctl recipe-run: starting the recipe: cannot reach the controller at "+dead+": ",
		"(is a8 up running? set --controller_url or A8_CONTROLLER_URL)")
}

func TestRecipeRunHelp(t *testing.T) {
	t.Parallel()
	r := run("", "help", "recipe-run")
	if r.code != ExitOK || r.stderr != "" {
		t.Fatalf("%v", r)
	}
	for _, want := range []string{
		"Usage: a8ctl recipe-run -t topology -s scenarios [-c checks] [-r load-script] [-H header] [-p pattern] [-w wait] [-f] [-o table|json|yaml]",
		"  -t, --topology file\n", "  -s, --scenarios file\n", "  -c, --checks file\n", "  -r, --run-load-script script\n",
		"  -H, --header header\n      the HTTP header that marks test requests (default X-Request-ID)\n",
		"  -p, --pattern pattern\n", "(default *)\n", "  -w, --wait duration\n", "(default 30s)\n", "  -f, --force\n",
		"  -o, --output format\n      output format: table, json, yaml (default table)\n",
		"A8_RECIPE_ID", "a8ctl rule-delete -t <recipe id>",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := run("", "help"); !strings.Contains(r.stdout, "  recipe-run      Run a Gremlin resilience recipe: inject faults") || strings.Contains(r.stdout, "not available") {
		t.Errorf("the command list:\n%s", r.stdout)
	}
}
