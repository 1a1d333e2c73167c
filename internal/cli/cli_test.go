package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
)

// TestMain clears the environment variables of a8ctl's global flags, so that the tests do not
// depend on the shell they run in (tests that need them set them with t.Setenv).
func TestMain(m *testing.M) {
	for _, v := range []string{"A8_CONTROLLER_URL", "A8_CONTROLLER_TOKEN", "A8_REGISTRY_URL", "A8_REGISTRY_TOKEN", "A8_NAMESPACE", "A8_DEBUG",
		"A8_TIMEOUT", "A8_GREMLIN_URL", "A8_GREMLIN_TOKEN"} {
		os.Unsetenv(v)
	}
	os.Exit(m.Run())
}

const examples = "../../examples/rules/"

// fabric is a real controller and registry served in-process on one port, as `a8 up` serves them.
type fabric struct {
	t   *testing.T
	url string
	ctl *client.Controller
	reg *client.Registry
}

func newFabric(t *testing.T, a auth.Authenticator) *fabric {
	t.Helper()
	return newWrappedFabric(t, a, nil)
}

// newWrappedFabric is newFabric with wrap, if not nil, around the servers' handler.
func newWrappedFabric(t *testing.T, a auth.Authenticator, wrap func(http.Handler) http.Handler) *fabric {
	t.Helper()
	rs, err := memory.NewRules("")
	if err != nil {
		t.Fatal(err)
	}
	recipes := memory.NewRecipes(store.RecipesOptions{}, nil)
	t.Cleanup(func() { recipes.Close() })
	ctl, err := controller.New(controller.Config{Store: rs, Recipes: recipes, Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Store: memory.NewInstances(nil), Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ctl.Mount(mux)
	reg.Mount(mux)
	h := ctl.Wrap(mux) // with the outer middleware, as a8 up has it
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cc, err := client.NewController(client.ControllerConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := client.NewRegistry(client.RegistryConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return &fabric{t: t, url: srv.URL, ctl: cc, reg: rc}
}

// result is what one run of a8ctl printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs a8ctl with args and stdin.
func run(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// a8ctl runs a8ctl against the fabric, with the URLs as global flags before the command.
func (f *fabric) a8ctl(stdin string, args ...string) result {
	return run(stdin, append([]string{"--controller_url", f.url, "--registry_url", f.url}, args...)...)
}

// ok runs a8ctl and fails the test unless it exits 0 with nothing on stderr.
func (f *fabric) ok(stdin string, args ...string) result {
	f.t.Helper()
	r := f.a8ctl(stdin, args...)
	if r.code != ExitOK || r.stderr != "" {
		f.t.Fatalf("a8ctl %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// fails runs a8ctl and checks its exit code and that stderr holds each of wants, stdout nothing.
func (f *fabric) fails(code int, wants []string, stdin string, args ...string) result {
	f.t.Helper()
	r := f.a8ctl(stdin, args...)
	checkFailure(f.t, r, code, wants...)
	return r
}

func checkFailure(t *testing.T, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code || r.stdout != "" {
		t.Fatalf("want exit %d and no stdout, got %v", code, r)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

var endpoints atomic.Int64

// register registers an instance of service with tags.
func (f *fabric) register(service string, tags ...string) {
	f.t.Helper()
	_, err := f.reg.Register(context.Background(), api.InstanceRegistration{
		ServiceName: service,
		Endpoint:    &api.Endpoint{Type: api.EndpointHTTP, Value: fmt.Sprintf("10.0.0.1:%d", 10000+endpoints.Add(1))},
		TTL:         600,
		Tags:        tags,
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// rules returns the stored rules f selects, without their ids (generated ids differ per run).
func (f *fabric) rules(filter client.RuleFilter) []api.Rule {
	f.t.Helper()
	list, _, err := f.ctl.GetRules(context.Background(), filter, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := range list.Rules {
		list.Rules[i].ID = ""
	}
	return list.Rules
}

// rule returns the stored rule with id.
func (f *fabric) rule(id string) api.Rule {
	f.t.Helper()
	list, _, err := f.ctl.GetRules(context.Background(), client.RuleFilter{IDs: []string{id}}, nil)
	if err != nil || len(list.Rules) != 1 {
		f.t.Fatalf("rule %s: %v %v", id, list.Rules, err)
	}
	return list.Rules[0]
}

// sameRules checks that got are the rules want (JSON, in the controller's order: by destination,
// then priority, highest first).
func sameRules(t *testing.T, got []api.Rule, want string) {
	t.Helper()
	if g, w := jsonOf(t, got), jsonOf(t, mustRules(t, want)); g != w {
		t.Errorf("stored rules\n%s\nwant (as Amalgam8's a8ctl stores them)\n%s", g, w)
	}
}

func ids(t *testing.T, stdout string) []string {
	t.Helper()
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("rule-create printed %q, not {\"ids\": [...]}: %v", stdout, err)
	}
	return out.IDs
}

func TestRuleCreateGetUpdateDelete(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)

	// Amalgam8's helloworld scenario: the default route, then the 75/25 canary over the same id.
	r := f.ok("", "rule-create", "-f", examples+"helloworld-default-route-rules.json")
	if got := ids(t, r.stdout); len(got) != 1 || got[0] != "helloworld-default-route" {
		t.Fatalf("ids %v", got)
	}
	if want := "{\n  \"ids\": [\n    \"helloworld-default-route\"\n  ]\n}\n"; r.stdout != want {
		t.Errorf("rule-create printed %q, want %q", r.stdout, want)
	}
	all := f.rules(client.RuleFilter{})
	if all[0].Destination != "helloworld" || all[0].Route.Backends[0].Tags[0] != "version=v1" {
		t.Errorf("stored %+v", all)
	}
	r = f.ok("", "rule-update", "-f", examples+"helloworld-v1-v2-route-rules.json")
	if r.stdout != "Request Completed\n" {
		t.Errorf("rule-update printed %q", r.stdout)
	}
	got := f.rule("helloworld-default-route").Route.Backends
	if got[0].Weight == nil || *got[0].Weight != 0.25 || got[1].Weight != nil {
		t.Errorf("weights after rule-update: %s", jsonOf(t, got))
	}

	// YAML, from a file, from stdin with -f - and without -f, and as a bare list.
	if got := ids(t, f.ok("", "rule-create", "-f", examples+"bookinfo-default-route-rules.yaml").stdout); len(got) != 4 || got[3] != "reviews-default" {
		t.Errorf("bookinfo ids %v", got)
	}
	yamlFile, err := os.ReadFile(examples + "bookinfo-jason-reviews-v2-route-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, f.ok(string(yamlFile), "rule-create", "-f", "-").stdout); len(got) != 1 || got[0] != "reviews-test-v2" {
		t.Errorf("stdin ids %v", got)
	}
	bare := "- id: bare\n  destination: details\n  priority: 5\n  route:\n    backends:\n    - tags: [v2]\n.yaml\nignored after the terminator\n"
	if got := ids(t, f.ok(bare, "rule-create", "-r").stdout); len(got) != 1 || got[0] != "bare" {
		t.Errorf("bare list ids %v", got)
	}
	single := `{"destination": "details", "priority": 3, "route": {"backends": [{"tags": ["v3"]}]}}`
	if got := ids(t, f.ok(single, "rule-create").stdout); len(got) != 1 || len(got[0]) != 36 {
		t.Errorf("single rule: generated id %v", got)
	}

	// rule-get: YAML by default, which reads back as a rule file; JSON with -o json.
	r = f.ok("", "rule-get", "-a")
	back, err := rules.ParseFile([]byte(r.stdout))
	if err != nil || len(back) != 8 {
		t.Fatalf("rule-get -a printed %d rules (%v):\n%s", len(back), err, r.stdout)
	}
	if !strings.HasPrefix(r.stdout, "rules:\n  - id: ") {
		t.Errorf("rule-get -a YAML starts %q", r.stdout[:min(40, len(r.stdout))])
	}
	r = f.ok("", "rule-get", "-i", "reviews-test-v2", "-i", "bare", "-o", "json")
	var list api.RuleList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Rules) != 2 {
		t.Fatalf("rule-get -o json: %v\n%s", err, r.stdout)
	}
	if list.Rules[1].ID != "reviews-test-v2" || list.Rules[1].Match.Headers["Cookie"] != "^(.*?;)?(user=jason)(;.*)?$" || !strings.Contains(r.stdout, `"^(.*?;)?(user=jason)(;.*)?$"`) {
		t.Errorf("rule-get -o json: %s", r.stdout)
	}
	r = f.ok("", "rule-get", "-d", "details", "--output=json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Rules) != 3 {
		t.Errorf("rule-get -d details: %v\n%s", err, r.stdout)
	}
	// rule-get's output is a valid rule-update input (the round trip of an edit).
	f.ok(f.ok("", "rule-get", "-d", "ratings").stdout, "rule-update", "-f", "-")

	// rule-delete by id, destination, tag; -a with a question, answered on stdin.
	if r := f.ok("", "rule-delete", "-i", "bare"); r.stdout != "Request Completed\n" {
		t.Errorf("rule-delete printed %q", r.stdout)
	}
	f.ok("", "rule-delete", "-d", "details")
	if n := len(f.rules(client.RuleFilter{})); n != 5 {
		t.Errorf("%d rules left, want 5", n)
	}
	r = f.a8ctl("n\n", "rule-delete", "-a")
	if r.code != ExitOK || r.stdout != "" || !strings.Contains(r.stderr, "Do you really want to delete all rules? [y/N]: ") || !strings.Contains(r.stderr, "Nothing deleted.") {
		t.Errorf("rule-delete -a answered no: %v", r)
	}
	f.fails(ExitFailure, []string{"no answer on stdin, nothing deleted (add -f to delete without asking)"}, "", "rule-delete", "-a")
	if n := len(f.rules(client.RuleFilter{})); n != 5 {
		t.Errorf("%d rules left after the refusals, want 5", n)
	}
	r = f.a8ctl("yes\n", "rule-delete", "-a")
	if r.code != ExitOK || r.stdout != "Request Completed\n" {
		t.Errorf("rule-delete -a answered yes: %v", r)
	}
	if n := len(f.rules(client.RuleFilter{})); n != 0 {
		t.Errorf("%d rules left, want 0", n)
	}
	f.ok("", "rule-create", "-f", examples+"bookinfo-default-route-rules.yaml")
	f.ok("", "rule-delete", "-a", "-f")
	if n := len(f.rules(client.RuleFilter{})); n != 0 {
		t.Errorf("%d rules left after -a -f, want 0", n)
	}
}

func TestRuleDeleteByTag(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	f.ok(`{"rules":[
		{"id":"a","tags":["recipe","x"],"destination":"d","actions":[{"action":"trace"}]},
		{"id":"b","tags":["recipe"],"destination":"d","actions":[{"action":"trace"}]},
		{"id":"c","destination":"d","actions":[{"action":"trace"}]}]}`, "rule-create")
	f.ok("", "rule-delete", "-t", "recipe", "-t", "x")
	f.ok("", "rule-delete", "--tag=recipe")
	got := f.rules(client.RuleFilter{})
	if len(got) != 1 || got[0].Destination != "d" || len(got[0].Tags) != 0 {
		t.Errorf("left %s, want only c", jsonOf(t, got))
	}
}

func TestRuleErrors(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Files a8ctl cannot read as rules: the file and the field path.
	typo := write("typo.yaml", "rules:\n- destination: reviews\n  route:\n    backends:\n    - tags: [v1]\n      wieght: 0.5\n")
	f.fails(ExitFailure, []string{typo + ": rules[0].route.backends[0].wieght: unknown field"}, "", "rule-create", "-f", typo)
	wrongType := write("type.json", `{"rules":[{"destination":"reviews","route":{"backends":[{"tags":["v1"],"weight":"half"}]}}]}`)
	f.fails(ExitFailure, []string{"rules[0].route.backends[0].weight: expected a number"}, "", "rule-create", "-f", wrongType)
	f.fails(ExitFailure, []string{"stdin: neither valid JSON nor valid YAML"}, "rules: [\n", "rule-create")
	f.fails(ExitFailure, []string{"reading the rules:", "no-such-file.yaml"}, "", "rule-create", "-f", filepath.Join(dir, "no-such-file.yaml"))
	f.fails(ExitFailure, []string{"the file is empty"}, "", "rule-create", "-f", write("empty.yaml", "\n"))
	f.fails(ExitUsage, []string{"no rules on stdin"}, "", "rule-create")
	f.fails(ExitFailure, []string{"no rules in the file"}, "", "rule-create", "-f", write("none.yaml", "rules: []\n"))

	// Rules the controller refuses: its description, each problem with its field path, one a line.
	bad := write("bad.yaml", `rules:
- destination: reviews
  route:
    backends:
    - tags: [v1]
      weight: 1.5
- destination: reviews
  match:
    headers:
      Cookie: "(user=jason"
  route:
    backends:
    - tags: [v2]
`)
	r := f.fails(ExitFailure, []string{
		"creating the rules: the controller answered 400 (error_invalid_rule): invalid rules:\n  rules[0].route.backends[0].weight: ",
		"\n  rules[1].match.headers.Cookie: ",
	}, "", "rule-create", "-f", bad)
	if !strings.Contains(r.stderr, "1.5") || strings.Count(r.stderr, "\n  rules[") != 2 {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if n := len(f.rules(client.RuleFilter{})); n != 0 {
		t.Errorf("%d rules stored after a refusal", n)
	}

	// Unknown ids.
	f.fails(ExitFailure, []string{"getting the rules: the controller answered 404 (error_rule_not_found)", "nope"}, "", "rule-get", "-i", "nope")
	f.fails(ExitFailure, []string{"updating the rules: the controller answered 404", "nope"}, "",
		"rule-update", "-f", write("upd.json", `{"rules":[{"id":"nope","destination":"d","route":{"backends":[{"tags":["v1"]}]}}]}`))
	f.fails(ExitFailure, []string{"rules[0]: no id: rule-update replaces rules named by their id"}, "",
		"rule-update", "-f", write("noid.json", `{"rules":[{"destination":"d","route":{"backends":[{"tags":["v1"]}]}}]}`))

	// Commands without what they need.
	f.fails(ExitUsage, []string{"which rules? give -a for all"}, "", "rule-get")
	f.fails(ExitUsage, []string{"which rules? give -i id"}, "", "rule-delete")
	f.fails(ExitUsage, []string{"-a deletes every rule: give it alone"}, "", "rule-delete", "-a", "-i", "x")
	f.fails(ExitUsage, []string{`-o: want yaml, json, got "table"`}, "", "rule-get", "-a", "-o", "table")
	f.fails(ExitUsage, []string{"takes no arguments"}, "", "rule-get", "-a", "extra")
}

func TestUnreachableServers(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	f := newFabric(t, nil)

	r := run("", "--controller_url", dead, "route-list")
	checkFailure(t, r, ExitFailure, "a8ctl route-list: listing the route rules: cannot reach the controller at "+dead+": ",
		"connection refused", "(is a8 up running? set --controller_url or A8_CONTROLLER_URL)")
	r = run("", "--registry_url", dead, "service-list")
	checkFailure(t, r, ExitFailure, "cannot reach the registry at "+dead, "set --registry_url or A8_REGISTRY_URL")
	// The registry alone away: route-list needs both.
	r = run("", "route-list", "--controller_url", f.url, "--registry_url", dead)
	checkFailure(t, r, ExitFailure, "listing the registered services: cannot reach the registry at "+dead)
	r = run("", "rule-create", "--controller_url", dead, "-f", examples+"helloworld-default-route-rules.json")
	checkFailure(t, r, ExitFailure, "creating the rules: cannot reach the controller at "+dead)
	r = run("", "--controller_url", "localhost:8080", "rule-get", "-a")
	checkFailure(t, r, ExitUsage, `controller server URL "localhost:8080": want http(s)://host:port`, "set --controller_url or A8_CONTROLLER_URL")
	// A URL that is not a8.
	r = run("", "--controller_url", f.url+"/nothing", "rule-get", "-a")
	checkFailure(t, r, ExitFailure, "the controller answered 404", "is "+f.url+"/nothing an a8 controller?")
}

func TestUsage(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	tests := []struct {
		name  string
		args  []string
		code  int
		out   []string // on stdout
		err   []string // on stderr
		quiet bool     // nothing on stdout
	}{
		{name: "help", args: []string{"help"}, out: []string{"Usage:\n  a8ctl [global flags] <command>", "route-set", "traffic-start", "[A8_CONTROLLER_URL]", "(default http://localhost:8080)"}},
		{name: "--help", args: []string{"--help"}, out: []string{"rule-create"}},
		{name: "-h", args: []string{"-h"}, out: []string{"rule-create"}},
		{name: "command --help", args: []string{"route-set", "--help"}, out: []string{"Usage: a8ctl route-set <service> --default <version>", "--selector 'version(condition)' (repeatable)", "--registry_token token  [A8_REGISTRY_TOKEN]"}},
		{name: "help command", args: []string{"help", "action-add"}, out: []string{"Usage: a8ctl action-add --destination <service>", "--cookie key=value"}},
		{name: "help short flags", args: []string{"help", "rule-get"}, out: []string{"-o, --output format", "(default yaml)", "-i, --id id (repeatable)"}},
		{name: "help unknown", args: []string{"help", "nope"}, code: ExitUsage, err: []string{`unknown command "nope"`}, quiet: true},
		{name: "version", args: []string{"version"}, out: []string{"a8ctl "}},
		{name: "--version", args: []string{"--version"}, out: []string{"a8ctl "}},
		{name: "nothing", args: nil, code: ExitUsage, err: []string{"Usage:"}, quiet: true},
		{name: "unknown command", args: []string{"rule-craete"}, code: ExitUsage, err: []string{`a8ctl: unknown command "rule-craete" (did you mean rule-create?)`}, quiet: true},
		{name: "unknown flag", args: []string{"route-list", "--bad"}, code: ExitUsage, err: []string{"a8ctl route-list: flag provided but not defined: -bad", "a8ctl route-list --help"}, quiet: true},
		{name: "unknown global flag", args: []string{"--bad", "route-list"}, code: ExitUsage, err: []string{"flag provided but not defined: -bad"}, quiet: true},
		{name: "bad output", args: []string{"route-list", "-o", "xml"}, code: ExitUsage, err: []string{`want table, json, yaml, got "xml"`}, quiet: true},
		{name: "route-set without service", args: []string{"route-set", "--default", "v1"}, code: ExitUsage, err: []string{"missing the service"}, quiet: true},
		{name: "route-set without default", args: []string{"route-set", "reviews"}, code: ExitUsage, err: []string{"You must specify --default"}, quiet: true},
		{name: "route-set two services", args: []string{"route-set", "a", "b", "--default", "v1"}, code: ExitUsage, err: []string{`takes one service, got ["a" "b"]`}, quiet: true},
		{name: "route-set bad selector", args: []string{"route-set", "reviews", "--default", "v1", "--selector", "v2(weight=2)"}, code: ExitUsage, err: []string{"Invalid --selector value: v2(weight=2)"}, quiet: true},
		{name: "route-set unknown selector", args: []string{"route-set", "reviews", "--default", "v1", "--selector", "v2(color=red)"}, code: ExitUsage, err: []string{"Unrecognized --selector key (color)"}, quiet: true},
		{name: "route-delete without service", args: []string{"route-delete"}, code: ExitUsage, err: []string{"missing the service"}, quiet: true},
		{name: "action-add without destination", args: []string{"action-add", "--source", "a", "--action", "v1(1->delay=1)"}, code: ExitUsage, err: []string{"You must specify --destination, and at least one --source, --header, or --cookie parameter"}, quiet: true},
		{name: "action-add without match", args: []string{"action-add", "--destination", "a", "--action", "v1(1->delay=1)"}, code: ExitUsage, err: []string{"You must specify --destination, and at least one"}, quiet: true},
		{name: "action-add without action", args: []string{"action-add", "--destination", "a", "--source", "b"}, code: ExitUsage, err: []string{"You must specify at least one --action parameter"}, quiet: true},
		{name: "action-add bad action", args: []string{"action-add", "--destination", "a", "--source", "b", "--action", "v1(1->explode=1)"}, code: ExitUsage, err: []string{"Invalid --action type"}, quiet: true},
		{name: "action-add bad priority", args: []string{"action-add", "--destination", "a", "--source", "b", "--action", "v1(1->delay=1)", "--priority", "high"}, code: ExitUsage, err: []string{`invalid value "high" for flag -priority: want a whole number`}, quiet: true},
		{name: "action-add two cookies", args: []string{"action-add", "--destination", "a", "--cookie", "a=1", "--cookie", "b=2", "--action", "v1(1->delay=1)"}, code: ExitUsage, err: []string{"--cookie given 2 times"}, quiet: true},
		{name: "action-clear without service", args: []string{"action-clear"}, code: ExitUsage, err: []string{"missing the service"}, quiet: true},
		{name: "traffic-start without version", args: []string{"traffic-start", "reviews"}, code: ExitUsage, err: []string{"missing the version"}, quiet: true},
		{name: "traffic-start bad amount", args: []string{"traffic-start", "reviews", "v2", "--amount", "0"}, code: ExitUsage, err: []string{"--amount must be between 1 and 100, got 0"}, quiet: true},
		{name: "traffic-step bad amount", args: []string{"traffic-step", "reviews", "--amount", "101"}, code: ExitUsage, err: []string{"--amount must be between 1 and 100"}, quiet: true},
		{name: "traffic-abort without service", args: []string{"traffic-abort"}, code: ExitUsage, err: []string{"missing the service"}, quiet: true},
		{name: "info with an argument", args: []string{"info", "x"}, code: ExitUsage, err: []string{"takes no arguments"}, quiet: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.a8ctl("", tt.args...)
			if tt.name == "nothing" || strings.HasPrefix(tt.name, "help") || strings.Contains(tt.name, "version") || strings.Contains(tt.name, "-h") {
				r = run("", tt.args...)
			}
			if r.code != tt.code || (tt.quiet && r.stdout != "") || (!tt.quiet && r.stderr != "") {
				t.Fatalf("want exit %d: %v", tt.code, r)
			}
			for _, w := range tt.out {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tt.err {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

func TestRouteSetStoresAmalgam8Rules(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	f.register("reviews", "v1")
	f.register("ratings", "v1")

	r := f.ok("", "route-set", "reviews", "--default", "v1",
		"--selector", "v2(weight=0.25)", "--selector", `v3(user="jason")`, "--selector", `v4(header="Foo:bar")`)
	if r.stdout != "Set routing rules for microservice reviews\n" {
		t.Errorf("route-set printed %q", r.stdout)
	}
	// What the Python a8ctl PUT for this command line.
	sameRules(t, f.rules(client.RuleFilter{Destinations: []string{"reviews"}}), `[
		{"priority":3,"destination":"reviews","match":{"headers":{"Cookie":".*?user=jason"}},"route":{"backends":[{"tags":["v3"]}]}},
		{"priority":2,"destination":"reviews","match":{"headers":{"Foo":"bar"}},"route":{"backends":[{"tags":["v4"]}]}},
		{"priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"],"weight":0.25},{"tags":["v1"]}]}}]`)

	r = f.ok("", "route-list")
	want := `+---------+-----------------+---------------------------------------------------------+
| Service | Default Version | Version Selectors                                       |
+---------+-----------------+---------------------------------------------------------+
| ratings |                 |                                                         |
| reviews | v1              | v3(user="jason"), v4(header="Foo:bar"), v2(weight=0.25) |
+---------+-----------------+---------------------------------------------------------+
`
	if r.stdout != want {
		t.Errorf("route-list:\n%s\nwant\n%s", r.stdout, want)
	}
	r = f.ok("", "route-list", "-s", "reviews", "-o", "json")
	wantJSON := `[
  {
    "service": "reviews",
    "default": "v1",
    "selectors": [
      "v3(user=\"jason\")",
      "v4(header=\"Foo:bar\")",
      "v2(weight=0.25)"
    ]
  }
]
`
	if r.stdout != wantJSON {
		t.Errorf("route-list -o json:\n%s\nwant\n%s", r.stdout, wantJSON)
	}
	r = f.ok("", "route-list", "-o", "yaml")
	if !strings.Contains(r.stdout, "- service: ratings\n") || !strings.Contains(r.stdout, `    - v4(header="Foo:bar")`) {
		t.Errorf("route-list -o yaml:\n%s", r.stdout)
	}

	// route-set replaces every route rule of the service; with a source, as the Python a8ctl.
	f.ok("", "route-set", "reviews", "--default", "version=v1", "--source", "productpage:version=v1", "--selector", "version=v2(weight=0.5)")
	sameRules(t, f.rules(client.RuleFilter{Destinations: []string{"reviews"}}), `[
		{"priority":2,"destination":"reviews","match":{"source":{"name":"productpage","tags":["version=v1"]}},"route":{"backends":[{"tags":["version=v2"],"weight":0.5},{"tags":["version=v1"]}]}},
		{"priority":1,"destination":"reviews","route":{"backends":[{"tags":["version=v1"]}]}}]`)
	r = f.ok("", "route-list", "-s", "reviews")
	if !strings.Contains(r.stdout, "| reviews | version=v1      | version=v2(source=productpage:version=v1,weight=0.5), version=v1(source=productpage:version=v1) |") {
		t.Errorf("route-list with a source rule:\n%s", r.stdout)
	}

	// A rule of another kind or another destination is not touched.
	f.ok("", "rule-create", "-f", examples+"bookinfo-jason-7s-delay.yaml")
	if r := f.ok("", "route-delete", "reviews"); r.stdout != "Deleted routing rules for microservice reviews\n" {
		t.Errorf("route-delete printed %q", r.stdout)
	}
	if got := f.rules(client.RuleFilter{Destinations: []string{"reviews"}}); len(got) != 0 {
		t.Errorf("reviews rules left: %s", jsonOf(t, got))
	}
	if got := f.rules(client.RuleFilter{}); len(got) != 1 || got[0].Destination != "ratings" {
		t.Errorf("route-delete touched other rules: %s", jsonOf(t, got))
	}

	// A selector the controller refuses (weights over 1): its answer, nothing changed.
	f.ok("", "route-set", "details", "--default", "v1")
	f.fails(ExitFailure, []string{"setting the route rules of details: the controller answered 400 (error_invalid_rule): invalid rules:\n  rules[0].route.backends"}, "",
		"route-set", "details", "--default", "v1", "--selector", "v2(weight=0.75)", "--selector", "v3(weight=0.5)")
	sameRules(t, f.rules(client.RuleFilter{Destinations: []string{"details"}}), `[{"priority":1,"destination":"details","route":{"backends":[{"tags":["v1"]}]}}]`)
}

func TestActionAddListClear(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	f.ok("", "rule-create", "-f", examples+"bookinfo-jason-7s-delay.yaml") // priority 10
	f.ok("", "rule-create", "-f", examples+"bookinfo-default-route-rules.yaml")

	r := f.ok("", "action-add", "--source", "reviews:version=v2", "--destination", "ratings", "--cookie", "user=jason",
		"--action", "version=v1(0.5->abort=503)", "--action", "version=v1(1->delay=2.5)")
	if r.stdout != "Set action rule for destination ratings\n" {
		t.Errorf("action-add printed %q", r.stdout)
	}
	f.ok("", "action-add", "--destination", "ratings", "--header", "X-Test:^yes$", "--header", "X-Other:1", "--action", "v2(1->abort=400)", "--priority", "5")
	// The existing rule kept (same id), the new ones as the Python a8ctl builds them.
	got := f.rules(client.RuleFilter{Destinations: []string{"ratings"}})
	sameRules(t, got[:3], `[
		{"priority":20,"destination":"ratings","match":{"source":{"name":"reviews","tags":["version=v2"]},"headers":{"Cookie":".*?user=jason"}},
		 "actions":[{"action":"abort","probability":0.5,"tags":["version=v1"],"return_code":503},{"action":"delay","duration":2.5,"probability":1,"tags":["version=v1"]}]},
		{"priority":10,"destination":"ratings","match":{"source":{"name":"reviews","tags":["version=v2"]},"headers":{"Cookie":"^(.*?;)?(user=jason)(;.*)?$"}},
		 "actions":[{"action":"delay","duration":7,"probability":1,"tags":["version=v1"]}]},
		{"priority":5,"destination":"ratings","match":{"headers":{"X-Other":"1","X-Test":"^yes$"}},"actions":[{"action":"abort","probability":1,"tags":["v2"],"return_code":400}]}]`)
	f.rule("bookinfo-jason-7s-delay") // still there, under its id
	if len(got) != 4 || got[3].Route == nil {
		t.Errorf("the ratings route rule should be untouched: %s", jsonOf(t, got))
	}

	// action-list: the three action rules, highest priority first.
	byPriority := map[int]string{}
	list, _, err := f.ctl.GetRules(context.Background(), client.RuleFilter{Destinations: []string{"ratings"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rl := range list.Rules {
		byPriority[rl.Priority] = rl.ID
	}
	r = f.ok("", "action-list")
	wantTable := fmt.Sprintf(`+-------------+--------------------+------------------------------------+----------+------------------------------------------------------+--------------------------------------+
| Destination | Source             | Headers                            | Priority | Actions                                              | Rule ID                              |
+-------------+--------------------+------------------------------------+----------+------------------------------------------------------+--------------------------------------+
| ratings     | reviews:version=v2 | Cookie:.*?user=jason               | 20       | version=v1(0.5->abort=503), version=v1(1->delay=2.5) | %-36s |
| ratings     | reviews:version=v2 | Cookie:^(.*?;)?(user=jason)(;.*)?$ | 10       | version=v1(1->delay=7)                               | bookinfo-jason-7s-delay              |
| ratings     |                    | X-Other:1, X-Test:^yes$            | 5        | v2(1->abort=400)                                     | %-36s |
+-------------+--------------------+------------------------------------+----------+------------------------------------------------------+--------------------------------------+
`, byPriority[20], byPriority[5])
	if r.stdout != wantTable {
		t.Errorf("action-list:\n%s\nwant\n%s", r.stdout, wantTable)
	}
	r = f.ok("", "action-list", "-d", "ratings", "-o", "json")
	var entries []actionEntry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != 3 || entries[1].ID != "bookinfo-jason-7s-delay" || entries[1].Actions[0] != "version=v1(1->delay=7)" {
		t.Errorf("action-list -o json: %v\n%s", err, r.stdout)
	}
	r = f.ok("", "action-list", "-s", "details", "-o", "yaml")
	if r.stdout != "[]\n" {
		t.Errorf("action-list of a service without actions: %q", r.stdout)
	}
	r = f.ok("", "action-list", "-i", "bookinfo-jason-7s-delay", "-o", "yaml")
	if !strings.Contains(r.stdout, "- destination: ratings\n  source: reviews:version=v2\n") || !strings.Contains(r.stdout, "id: bookinfo-jason-7s-delay") {
		t.Errorf("action-list -o yaml:\n%s", r.stdout)
	}

	// action-clear deletes the destination's action rules only.
	if r := f.ok("", "action-clear", "ratings"); r.stdout != "Cleared action rules for microservice ratings\n" {
		t.Errorf("action-clear printed %q", r.stdout)
	}
	if got := f.rules(client.RuleFilter{Destinations: []string{"ratings"}}); len(got) != 1 || got[0].Route == nil {
		t.Errorf("after action-clear: %s", jsonOf(t, got))
	}
	if r := f.ok("", "action-list"); strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("action-list with no actions:\n%s", r.stdout)
	}

	// action-add's first rule of a destination gets priority 10; a rule the controller refuses.
	f.ok("", "action-add", "--destination", "details", "--source", "productpage", "--action", "v1(1->delay=1)")
	sameRules(t, f.rules(client.RuleFilter{Destinations: []string{"details"}})[:1], `[{"priority":10,"destination":"details","match":{"source":{"name":"productpage"}},"actions":[{"action":"delay","duration":1,"probability":1,"tags":["v1"]}]}]`)
	f.fails(ExitFailure, []string{"adding an action rule to details: the controller answered 400 (error_invalid_rule)", "rules[0].match.headers.X"}, "",
		"action-add", "--destination", "details", "--header", "X:(unclosed", "--action", "v1(1->abort=500)")
	if n := len(f.rules(client.RuleFilter{Destinations: []string{"details"}})); n != 2 {
		t.Errorf("details has %d rules after a refused action-add, want 2", n)
	}
}

func TestServiceList(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	r := f.ok("", "service-list")
	if r.stdout != "+---------+-----------+\n| Service | Instances |\n+---------+-----------+\n" {
		t.Errorf("empty service-list:\n%s", r.stdout)
	}
	f.register("helloworld", "v1")
	f.register("helloworld", "v2")
	f.register("helloworld", "v1")
	f.register("helloworld", "v2")
	f.register("details", "version=v1", "zone=a")
	r = f.ok("", "service-list")
	want := `+------------+----------------------+
| Service    | Instances            |
+------------+----------------------+
| details    | version=v1,zone=a(1) |
| helloworld | v1(2), v2(2)         |
+------------+----------------------+
`
	if r.stdout != want {
		t.Errorf("service-list:\n%s\nwant\n%s", r.stdout, want)
	}
	r = f.ok("", "service-list", "-o", "json")
	var entries []serviceEntry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != 2 || strings.Join(entries[1].Instances, " ") != "v1(2) v2(2)" {
		t.Errorf("service-list -o json: %v\n%s", err, r.stdout)
	}
	r = f.ok("", "service-list", "-o", "yaml")
	if !strings.Contains(r.stdout, "- service: helloworld\n  instances:\n    - v1(2)\n    - v2(2)\n") {
		t.Errorf("service-list -o yaml:\n%s", r.stdout)
	}
}

func TestTrafficRollout(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	for range 2 {
		f.register("reviews", "version=v1")
		f.register("reviews", "version=v2")
	}
	f.register("reviews", "version=v3", "zone=a")
	f.ok("", "route-set", "reviews", "--default", "version=v1", "--selector", `version=v3(user="jason")`)
	defaultID := ""
	for _, rl := range f.ruleList("reviews") {
		if rl.Match == nil {
			defaultID = rl.ID
		}
	}
	route := func() string {
		t.Helper()
		return jsonOf(t, f.rule(defaultID).Route.Backends)
	}

	steps := []struct {
		args   []string
		stdout string
		route  string
	}{
		{[]string{"traffic-start", "reviews", "version=v2"}, "Transfer starting for reviews: diverting 10% of traffic from version=v1 to version=v2\n",
			`[{"tags":["version=v2"],"weight":0.1},{"tags":["version=v1"]}]`},
		{[]string{"traffic-step", "reviews"}, "Transfer step for reviews: diverting 20% of traffic from version=v1 to version=v2\n",
			`[{"tags":["version=v2"],"weight":0.2},{"tags":["version=v1"]}]`},
		{[]string{"traffic-step", "-s", "reviews", "-a", "90"}, "Transfer step for reviews: diverting 90% of traffic from version=v1 to version=v2\n",
			`[{"tags":["version=v2"],"weight":0.9},{"tags":["version=v1"]}]`},
		{[]string{"traffic-step", "reviews"}, "Transfer complete for reviews: sending 100% of traffic to version=v2\n",
			`[{"tags":["version=v2"]}]`},
		{[]string{"traffic-start", "reviews", "version=v1", "--amount", "25"}, "Transfer starting for reviews: diverting 25% of traffic from version=v2 to version=v1\n",
			`[{"tags":["version=v1"],"weight":0.25},{"tags":["version=v2"]}]`},
		{[]string{"traffic-abort", "reviews"}, "Transfer aborted for reviews: all traffic reverted to version=v2\n",
			`[{"tags":["version=v2"]}]`},
		{[]string{"traffic-start", "-s", "reviews", "-v", "version=v3,zone=a", "--amount", "100"}, "Transfer complete for reviews: sending 100% of traffic to version=v3,zone=a\n",
			`[{"tags":["version=v3","zone=a"]}]`},
	}
	for _, s := range steps {
		r := f.ok("", s.args...)
		if r.stdout != s.stdout {
			t.Errorf("a8ctl %s printed %q, want %q", strings.Join(s.args, " "), r.stdout, s.stdout)
		}
		if got := route(); got != s.route {
			t.Errorf("after a8ctl %s the default route is %s, want %s", strings.Join(s.args, " "), got, s.route)
		}
	}
	// The user rule was never touched.
	if rs := f.ruleList("reviews"); len(rs) != 2 || rs[0].Match == nil || rs[0].Route.Backends[0].Tags[0] != "version=v3" {
		t.Errorf("reviews rules: %s", jsonOf(t, rs))
	}

	// Refusals: exit 1, the reason, nothing changed.
	f.ok("", "traffic-start", "reviews", "version=v1")
	before := route()
	refusals := []struct {
		args []string
		want string
	}{
		{[]string{"traffic-start", "reviews", "version=v2"}, `Invalid state for start operation: service "reviews" traffic is already being split (continue with a8ctl traffic-step reviews, or a8ctl traffic-abort reviews)`},
		{[]string{"traffic-start", "ratings", "v2"}, "No default route rule for ratings"},
		{[]string{"traffic-step", "ratings"}, "No default route rule for ratings"},
	}
	for _, rf := range refusals {
		f.fails(ExitFailure, []string{rf.want}, "", rf.args...)
	}
	f.ok("", "traffic-abort", "reviews")
	for _, rf := range []struct {
		args []string
		want string
	}{
		{[]string{"traffic-step", "reviews"}, "Invalid state for step operation: no traffic transfer in progress for reviews (start one with a8ctl traffic-start reviews <version>)"},
		{[]string{"traffic-abort", "reviews"}, "Invalid state for abort operation: no traffic transfer in progress for reviews"},
		{[]string{"traffic-start", "reviews", "version=v4"}, `Invalid state for start operation: service "reviews" does not have active instances of version "version=v4"`},
		{[]string{"traffic-start", "reviews", "version=v3,zone=a"}, `Invalid state for start operation: service "reviews" already sends all its traffic to version=v3,zone=a`},
	} {
		f.fails(ExitFailure, []string{rf.want}, "", rf.args...)
	}
	if got := route(); got == before || got != `[{"tags":["version=v3","zone=a"]}]` {
		t.Errorf("default route after the refusals: %s", got)
	}

	// A default version without instances is not receiving traffic.
	f.ok("", "route-set", "details", "--default", "v1")
	f.register("details", "v2")
	f.fails(ExitFailure, []string{`Invalid state for start operation: service "details" is not currently receiving traffic (no instance of details has the tags v1)`}, "", "traffic-start", "details", "v2")
	// Two rules without match: which one to change is not for a8ctl to guess.
	f.ok(`{"rules":[{"id":"other-default","priority":7,"destination":"details","route":{"backends":[{"tags":["v2"]}]}}]}`, "rule-create")
	f.fails(ExitFailure, []string{"details has 2 route rules without a match", "other-default"}, "", "traffic-start", "details", "v2")
}

// ruleList returns the stored rules of destination, with their ids.
func (f *fabric) ruleList(destination string) []api.Rule {
	f.t.Helper()
	list, _, err := f.ctl.GetRules(context.Background(), client.RuleFilter{Destinations: []string{destination}}, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return list.Rules
}

func TestTokensAndNamespaces(t *testing.T) {
	t.Parallel()
	f := newFabric(t, auth.Trusted())
	f.fails(ExitFailure, []string{"creating the rules: the controller answered 401", "(set --controller_token or A8_CONTROLLER_TOKEN)"}, "",
		"rule-create", "-f", examples+"helloworld-default-route-rules.json")
	f.ok("", "--controller_token", "team-a", "rule-create", "-f", examples+"helloworld-default-route-rules.json")
	// The admin token acts for the tenant named by --namespace.
	r := f.ok("", "rule-get", "-a", "-o", "json", "--controller_token", "admin", "--namespace", "team-a")
	if !strings.Contains(r.stdout, "helloworld-default-route") {
		t.Errorf("admin for team-a: %s", r.stdout)
	}
	r = f.ok("", "rule-get", "-a", "--controller_token", "team-b", "-o", "json")
	if r.stdout != "{\n  \"rules\": []\n}\n" {
		t.Errorf("team-b sees %s", r.stdout)
	}
	f.fails(ExitFailure, []string{"(error_namespace_missing)"}, "", "rule-get", "-a", "--controller_token", "admin")
	f.fails(ExitFailure, []string{"listing the services: the registry answered 401", "(set --registry_token or A8_REGISTRY_TOKEN)"}, "", "service-list")
	f.ok("", "service-list", "--registry_token", "team-a")
}

// The tests below set environment variables, so they do not run in parallel.

func TestEnvironmentAndFlagOrder(t *testing.T) {
	f := newFabric(t, nil)
	f.register("helloworld", "v1")
	t.Setenv("A8_CONTROLLER_URL", f.url)
	t.Setenv("A8_REGISTRY_URL", f.url)
	t.Setenv("A8_CONTROLLER_TOKEN", "default")
	t.Setenv("A8_NAMESPACE", "")

	r := run("", "route-set", "helloworld", "--default", "v1")
	if r.code != ExitOK || r.stdout != "Set routing rules for microservice helloworld\n" {
		t.Fatalf("with the URLs from the environment: %v", r)
	}
	r = run("", "info")
	want := `+---------------------+` + strings.Repeat("-", len(f.url)+2) + `+`
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, "| A8_CONTROLLER_URL   | "+f.url+" |") ||
		!strings.Contains(r.stdout, "| A8_CONTROLLER_TOKEN | ********") || strings.Contains(r.stdout, "default") {
		t.Errorf("info:\n%v", r)
	}
	// A flag wins over the environment, before or after the command.
	for _, args := range [][]string{
		{"--controller_url", "http://flag.example:1", "info"},
		{"info", "--controller_url", "http://flag.example:1"},
		{"--controller_url=http://other:2", "info", "--controller_url=http://flag.example:1"},
	} {
		if r := run("", args...); !strings.Contains(r.stdout, "| A8_CONTROLLER_URL   | http://flag.example:1 ") {
			t.Errorf("a8ctl %s:\n%v", strings.Join(args, " "), r)
		}
	}
	t.Setenv("A8_DEBUG", "maybe")
	checkFailure(t, run("", "info"), ExitUsage, `A8_DEBUG="maybe"`)
}

func TestDebugShowsTheExchange(t *testing.T) {
	f := newFabric(t, nil)
	t.Setenv("A8_DEBUG", "true")
	r := f.a8ctl("", "--controller_token", "default", "route-set", "reviews", "--default", "v1")
	if r.code != ExitOK || r.stdout != "Set routing rules for microservice reviews\n" {
		t.Fatalf("%v", r)
	}
	for _, want := range []string{
		"> PUT " + f.url + "/v1/rules/routes/reviews\n",
		"> Authorization: Bearer ****\n",
		`> {"rules":[{"priority":1,"destination":"reviews","route":{"backends":[{"tags":["v1"]}]}}]`,
		"< 201 Created (",
		`< {"ids":["`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("--debug output lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "Bearer default") {
		t.Errorf("--debug shows the token:\n%s", r.stderr)
	}
}

func TestInterrupted(t *testing.T) {
	t.Parallel()
	f := newFabric(t, nil)
	// Waiting for rules or for an answer on stdin: Ctrl-C (the context's end) stops the wait.
	for _, args := range [][]string{{"rule-create"}, {"rule-delete", "-a"}} {
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		var out, errb bytes.Buffer
		done := make(chan int)
		go func() {
			done <- Main(ctx, append([]string{"--controller_url", f.url}, args...), pr, &out, &errb)
		}()
		cancel()
		code := <-done
		pw.Close()
		checkFailure(t, result{out.String(), errb.String(), code}, ExitFailure, "a8ctl "+args[0]+": interrupted")
	}
	// A request in flight.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, []string{"--controller_url", f.url, "rule-get", "-a"}, strings.NewReader(""), &out, &errb)
	checkFailure(t, result{out.String(), errb.String(), code}, ExitFailure, "a8ctl rule-get: interrupted")
}
