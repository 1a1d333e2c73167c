package rules

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/a8fabric/a8/api"
)

func f(v float64) *float64 { return &v }
func n(v int) *int         { return &v }

func route(dest string, backends ...api.Backend) api.Rule {
	return api.Rule{Destination: dest, Route: &api.Route{Backends: backends}}
}

func backend(weight *float64, tags ...string) api.Backend {
	return api.Backend{Tags: tags, Weight: weight}
}

func TestValidate(t *testing.T) {
	ok := route("reviews", backend(nil, "version=v1"))
	tests := []struct {
		name string
		rule func(r *api.Rule)
		want string // substring of the error; "" for valid
	}{
		{"minimal route rule", func(*api.Rule) {}, ""},
		{"no destination", func(r *api.Rule) { r.Destination = "" }, "rules[0].destination: required"},
		{"long destination", func(r *api.Rule) { r.Destination = strings.Repeat("d", 65) }, "rules[0].destination: longer than 64 bytes"},
		{"both route and actions", func(r *api.Rule) { r.Actions = []api.Action{{Action: "trace"}} }, "rules[0]: has both route and actions"},
		{"neither", func(r *api.Rule) { r.Route = nil }, "rules[0]: has neither route nor actions"},
		{"empty actions", func(r *api.Rule) { r.Route = nil; r.Actions = []api.Action{} }, "rules[0].actions: must have at least one action"},
		{"id with space", func(r *api.Rule) { r.ID = "a b" }, `rules[0].id: "a b" contains spaces`},
		{"no backends", func(r *api.Rule) { r.Route.Backends = nil }, "rules[0].route.backends: required"},
		{"backend without tags", func(r *api.Rule) { r.Route.Backends[0].Tags = nil }, "rules[0].route.backends[0].tags: required"},
		{"duplicate tag", func(r *api.Rule) { r.Route.Backends[0].Tags = []string{"a", "a"} }, `rules[0].route.backends[0].tags[1]: "a" is listed twice`},
		{"weight zero", func(r *api.Rule) { r.Route.Backends[0].Weight = f(0) }, "rules[0].route.backends[0].weight: must be in (0, 1], got 0"},
		{"weight above 1", func(r *api.Rule) { r.Route.Backends[0].Weight = f(1.5) }, "must be in (0, 1], got 1.5"},
		{"weights above 1", func(r *api.Rule) {
			r.Route.Backends = []api.Backend{backend(f(0.7), "v1"), backend(f(0.5), "v2")}
		}, "rules[0].route.backends: weights of destination reviews sum to 1.2, more than 1"},
		{"nothing left for unweighted (a8ctl route-set weight=1.0)", func(r *api.Rule) {
			r.Route.Backends = []api.Backend{backend(f(1), "v1"), backend(nil, "v2")}
		}, ""},
		{"same backend twice (a8ctl route-set)", func(r *api.Rule) {
			r.Route.Backends = []api.Backend{backend(f(0.5), "a", "b"), {Name: "reviews", Tags: []string{"b", "a"}}}
		}, ""},
		{"comma in a backend tag", func(r *api.Rule) { r.Route.Backends[0].Tags = []string{"a,b"} }, `rules[0].route.backends[0].tags[0]: "a,b" contains a comma`},
		{"comma in a rule tag is fine", func(r *api.Rule) { r.Tags = []string{"a,b"} }, ""},
		{"destination with slash", func(r *api.Rule) { r.Destination = "a/b" }, `rules[0].destination: "a/b" contains /`},
		{"destination with newline", func(r *api.Rule) { r.Destination = "ab\n" }, `contains spaces or control characters`},
		{"backend name with space", func(r *api.Rule) { r.Route.Backends[0].Name = "a b" }, `rules[0].route.backends[0].name: "a b" contains spaces`},
		{"huge timeout", func(r *api.Rule) { r.Route.HTTPReqTimeout = f(1e12) }, "rules[0].route.http_req_timeout: the timeout must be more than 0 and at most 86400 seconds, got 1e+12"},
		{"huge retries", func(r *api.Rule) { r.Route.HTTPReqRetries = n(1000) }, "rules[0].route.http_req_retries: must be in [0, 100], got 1000"},
		{"huge sleep window", func(r *api.Rule) { r.Route.Backends[0].Resilience = &api.Resilience{SleepWindow: 1e300} }, "resilience.sleep_window: must be in [0, 86400] seconds"},
		{"header duplicates far apart", func(r *api.Rule) {
			r.Match = &api.Match{Headers: map[string]string{"Cookie": "a", "Foo": "b", "cookie": "c"}}
		}, "header names are case-insensitive"},
		{"Gremlin's * pattern", func(r *api.Rule) { r.Match = &api.Match{Headers: map[string]string{"X-Request-ID": "*"}} }, ""},
		{"bad lb_type", func(r *api.Rule) { r.Route.Backends[0].LBType = "fastest" }, `lb_type: "fastest" is not one of round_robin, least_request, random`},
		{"negative resilience", func(r *api.Rule) { r.Route.Backends[0].Resilience = &api.Resilience{MaxRequests: -1} }, "resilience.max_requests: must be in [0, 1073741824], got -1"},
		{"zero timeout", func(r *api.Rule) { r.Route.HTTPReqTimeout = f(0) }, "rules[0].route.http_req_timeout: the timeout must be more than 0"},
		{"negative retries", func(r *api.Rule) { r.Route.HTTPReqRetries = n(-1) }, "rules[0].route.http_req_retries: must be in [0, 100], got -1"},
		{"uri path and prefix", func(r *api.Rule) { r.Route.URI = &api.URI{Path: "/a", Prefix: "/b"} }, "rules[0].route.uri: give path or prefix, not both"},
		{"uri relative", func(r *api.Rule) { r.Route.URI = &api.URI{Prefix: "b"} }, `rules[0].route.uri.prefix: must start with /`},
		{"bad regex", func(r *api.Rule) { r.Match = &api.Match{Headers: map[string]string{"Cookie": "user=(jason"}} }, `rules[0].match.headers.Cookie: invalid regex "user=(jason"`},
		{"bad header name", func(r *api.Rule) { r.Match = &api.Match{Headers: map[string]string{"Bad Header": "x"}} }, `is not a valid HTTP header name`},
		{"same header twice", func(r *api.Rule) { r.Match = &api.Match{Headers: map[string]string{"cookie": "a", "Cookie": "b"}} }, "header names are case-insensitive"},
		{"source without name", func(r *api.Rule) { r.Match = &api.Match{Source: &api.Source{Tags: []string{"v1"}}} }, "rules[0].match.source.name: required"},
		{"empty any condition", func(r *api.Rule) { r.Match = &api.Match{Any: []api.MatchCondition{{}}} }, "rules[0].match.any[0]: empty condition"},
		{"0.x match forms", func(r *api.Rule) {
			r.Match = &api.Match{All: []api.MatchCondition{{Headers: map[string]string{"X-A": "1"}}}, None: []api.MatchCondition{{Source: &api.Source{Name: "bot"}}}}
		}, ""},
		{"empty match (0.x a8ctl)", func(r *api.Rule) { r.Match = &api.Match{} }, ""},
		{"with id names it", func(r *api.Rule) { r.ID = "reviews-default"; r.Route.Backends[0].Weight = f(2) }, `(rule "reviews-default")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			r.Route = &api.Route{Backends: append([]api.Backend(nil), ok.Route.Backends...)}
			tc.rule(&r)
			err := Validate([]api.Rule{r})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v; want one containing %q", err, tc.want)
			}
		})
	}
}

func TestValidate_Actions(t *testing.T) {
	action := func(a api.Action) []api.Rule {
		return []api.Rule{{Destination: "ratings", Actions: []api.Action{{Action: "trace"}, a}}}
	}
	tests := []struct {
		action api.Action
		want   string
	}{
		{api.Action{Action: "delay", Duration: 7, Probability: f(1), Tags: []string{"version=v1"}}, ""},
		{api.Action{Action: "abort", ReturnCode: n(503), Probability: f(0.5)}, ""},
		{api.Action{Action: "abort", ReturnCode: n(-1)}, ""},
		{api.Action{Action: "abort", ReturnCode: n(0)}, ""},
		{api.Action{Action: "trace", LogKey: "gremlin_recipe_id", LogValue: "r1"}, ""},
		{api.Action{Action: "delay"}, "rules[0].actions[1].duration: required"},
		{api.Action{Action: "delay", Duration: 1, Probability: f(0)}, "rules[0].actions[1].probability: must be in (0, 1], got 0"},
		{api.Action{Action: "delay", Duration: 1e300}, "rules[0].actions[1].duration: the delay must be more than 0 and at most 86400 seconds"},
		{api.Action{Action: "delay", Duration: -1}, "rules[0].actions[1].duration: the delay must be more than 0"},
		{api.Action{Action: "abort", ReturnCode: n(503), Tags: []string{"v1,v2"}}, `contains a comma`},
		{api.Action{Action: "delay", Duration: 1, Probability: f(1.1)}, "must be in (0, 1], got 1.1"},
		{api.Action{Action: "delay", Duration: 1, ReturnCode: n(500)}, "rules[0].actions[1].return_code: is not a field of a delay action"},
		{api.Action{Action: "abort"}, "rules[0].actions[1].return_code: required"},
		{api.Action{Action: "abort", ReturnCode: n(600)}, "return_code: must be in [-5, 599], got 600"},
		{api.Action{Action: "abort", ReturnCode: n(-6)}, "got -6"},
		{api.Action{Action: "abort", ReturnCode: n(500), Duration: 2}, "duration: is not a field of an abort action"},
		{api.Action{Action: "trace", Probability: f(1)}, "probability: is not a field of a trace action"},
		{api.Action{Action: "explode"}, `action: "explode" is not one of delay, abort, trace`},
		{api.Action{}, "action: required"},
	}
	for _, tc := range tests {
		err := Validate(action(tc.action))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error: %v", tc.action, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v; want one containing %q", tc.action, err, tc.want)
		}
	}
}

func TestValidate_ReportsEveryProblemAndDuplicateIDs(t *testing.T) {
	rs := []api.Rule{
		{ID: "a", Destination: "x", Route: &api.Route{Backends: []api.Backend{backend(f(2), "v1")}}},
		{ID: "a", Destination: "", Actions: []api.Action{{Action: "delay"}}},
	}
	err := Validate(rs)
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("Validate = %v", err)
	}
	want := []string{
		`rules[0].route.backends[0].weight: must be in (0, 1], got 2 (rule "a")`,
		`rules[1].id: "a" is also the id of rules[0]; ids must be unique`,
		`rules[1].destination: required: the service the rule applies to (rule "a")`,
		`rules[1].actions[0].duration: required: the delay in seconds, more than 0 (rule "a")`,
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCompile_OrderAndWeights(t *testing.T) {
	rs := []api.Rule{
		{ID: "b-low", Priority: 1, Destination: "reviews", Route: &api.Route{Backends: []api.Backend{
			backend(f(0.25), "version=v2"), backend(nil, "version=v1"), backend(nil, "version=v3")}}},
		{ID: "z-high", Priority: 5, Destination: "reviews", Route: &api.Route{Backends: []api.Backend{backend(nil, "version=v3")}, HTTPReqTimeout: f(3), HTTPReqRetries: n(2)}},
		{ID: "a-high", Priority: 5, Destination: "reviews", Route: &api.Route{Backends: []api.Backend{backend(f(0.5), "zone=b", "version=v2")}}},
		{ID: "act", Destination: "ratings", Actions: []api.Action{{Action: "delay", Duration: 7}}},
	}
	s, err := Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Destinations(), ","); got != "ratings,reviews" {
		t.Fatalf("destinations %s", got)
	}
	d := s.Destination("reviews")
	var order []string
	for _, r := range d.Routes {
		order = append(order, r.ID)
	}
	if strings.Join(order, ",") != "a-high,z-high,b-low" {
		t.Fatalf("route order %v, want priority descending then id", order)
	}
	// A lone weighted backend takes everything; tags are sorted into the key.
	only := d.Routes[0].Backends[0]
	if only.Weight != 1 || only.Key != "reviews:version=v2,zone=b" || only.LBType != "round_robin" {
		t.Fatalf("lone weighted backend = %+v", only)
	}
	if z := d.Routes[1]; z.Timeout.Seconds() != 3 || z.Retries != 2 {
		t.Fatalf("timeout/retries = %v/%d", z.Timeout, z.Retries)
	}
	low := d.Routes[2]
	if low.Timeout != DefaultTimeout {
		t.Fatalf("default timeout = %v", low.Timeout)
	}
	want := []float64{0.25, 0.375, 0.375}
	for i, b := range low.Backends {
		if math.Abs(b.Weight-want[i]) > 1e-12 {
			t.Fatalf("backend %d weight %v, want %v (unweighted share the rest)", i, b.Weight, want[i])
		}
	}
	// Pick follows the cumulative weights.
	for _, c := range []struct {
		u    float64
		want string
	}{{0, "version=v2"}, {0.2499, "version=v2"}, {0.25, "version=v1"}, {0.6249, "version=v1"}, {0.625, "version=v3"}, {0.99999, "version=v3"}} {
		if got := low.Pick(c.u).Tags[0]; got != c.want {
			t.Errorf("Pick(%v) = %s, want %s", c.u, got, c.want)
		}
	}
	if a := s.Destination("ratings").Actions[0].Actions[0]; a.Probability != 1 || a.Delay.Seconds() != 7 || a.LogKey != "trace" {
		t.Fatalf("action defaults: %+v", a)
	}
	if s.Destination("details") != nil {
		t.Fatal("a destination without rules has a table")
	}
}

func TestCompile_RejectsInvalid(t *testing.T) {
	if _, err := Compile([]api.Rule{{Destination: "x"}}); err == nil {
		t.Fatal("compiled an invalid rule")
	}
}

func TestMatch(t *testing.T) {
	jason := "^(.*?;)?(user=jason)(;.*)?$"
	rs := []api.Rule{
		{ID: "jason", Priority: 2, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"cookie": jason}},
			Route: &api.Route{Backends: []api.Backend{backend(nil, "version=v2")}}},
		{ID: "from-productpage-v1", Priority: 3, Destination: "reviews", Match: &api.Match{Source: &api.Source{Name: "productpage", Tags: []string{"version=v1"}}, Headers: map[string]string{"X-Canary": "yes"}},
			Route: &api.Route{Backends: []api.Backend{backend(nil, "version=v3")}}},
		{ID: "oldstyle", Priority: 4, Destination: "reviews", Match: &api.Match{
			Headers: map[string]string{"Cookie": ".*?user=sam"},
			Any:     []api.MatchCondition{{Headers: map[string]string{"X-A": "1"}}, {Source: &api.Source{Name: "gateway"}}},
			None:    []api.MatchCondition{{Headers: map[string]string{"X-Bot": "."}}},
		}, Route: &api.Route{Backends: []api.Backend{backend(nil, "version=v4")}}},
		{ID: "default", Priority: 1, Destination: "reviews", Route: &api.Route{Backends: []api.Backend{backend(nil, "version=v1")}}},
	}
	s, err := Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	d := s.Destination("reviews")
	pp1 := Caller{Name: "productpage", Tags: []string{"version=v1", "zone=a"}}
	pp2 := Caller{Name: "productpage", Tags: []string{"version=v2"}}
	gw := Caller{Name: "gateway"}
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		caller Caller
		header http.Header
		want   string
	}{
		{pp1, h(), "default"},
		{pp1, h("Cookie", "foo=bar;user=jason;x"), "jason"},
		{pp1, h("Cookie", "user=jason"), "jason"},
		{pp1, h("Cookie", "foo=bar;user=shriram;x"), "default"},
		{gw, h("Cookie", "a=b", "Cookie", "user=sam"), "oldstyle"}, // two Cookie headers are one list, "; "-joined
		{pp1, h("X-Canary", "yes"), "from-productpage-v1"},
		{pp2, h("X-Canary", "yes"), "default"},
		{gw, h("Cookie", "a=b; user=sam"), "oldstyle"},
		{pp1, h("Cookie", "a=b; user=sam", "X-A", "1"), "oldstyle"},
		{pp1, h("Cookie", "a=b; user=sam"), "default"},
		{gw, h("Cookie", "user=sam", "X-Bot", "yes"), "default"},
	}
	for i, tc := range tests {
		if got := d.Route(tc.caller, HTTPHeader(tc.header)); got == nil || got.ID != tc.want {
			t.Errorf("case %d (%s %v): got %v, want %s", i, tc.caller.Name, tc.header, got, tc.want)
		}
	}
	if d.Routes[1].Match.MatchesCaller(pp2) || !d.Routes[1].Match.MatchesCaller(pp1) || !d.Routes[0].Match.MatchesCaller(gw) {
		t.Fatal("MatchesCaller")
	}
}

func TestCompile_EdgeCases(t *testing.T) {
	rs := []api.Rule{
		// Amalgam8 route-set --default v1 --selector 'v2(weight=1.0)': v1 takes nothing.
		{ID: "w1", Destination: "reviews", Route: &api.Route{Backends: []api.Backend{backend(f(1), "v2"), backend(nil, "v1")}}},
		// Gremlin: a "*" header pattern and aborts that reset the connection.
		{ID: "g", Destination: "ratings", Match: &api.Match{Headers: map[string]string{"X-Request-ID": "*"}}, Actions: []api.Action{
			{Action: "abort", ReturnCode: n(0)}, {Action: "abort", ReturnCode: n(-1)}, {Action: "abort", ReturnCode: n(503)}}},
	}
	s, err := Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	w1 := s.Destination("reviews").Routes[0]
	for _, u := range []float64{0, 0.5, 0.999999} {
		if got := w1.Pick(u).Tags[0]; got != "v2" {
			t.Fatalf("Pick(%v) = %s; a backend with no share must never be picked", u, got)
		}
	}
	g := s.Destination("ratings").Actions[0]
	if !g.Match.Match(Caller{Name: "x"}, HTTPHeader{"X-Request-Id": {"abc"}}) || g.Match.Match(Caller{Name: "x"}, HTTPHeader{}) {
		t.Fatal("the * pattern must match any value of a present header, and not a missing header")
	}
	if !g.Actions[0].Reset || !g.Actions[1].Reset || g.Actions[2].Reset || g.Actions[2].ReturnCode != 503 {
		t.Fatalf("return codes below 100 reset the connection: %+v", g.Actions)
	}
}

// Each distinct header pattern is compiled once per Compile call, by validation, and the rules that
// use it share that *regexp.Regexp; another call compiles its own (there is no process-wide cache).
func TestCompile_SharesRegexes(t *testing.T) {
	jason := "^(.*?;)?(user=jason)(;.*)?$"
	rs := []api.Rule{
		{ID: "a", Priority: 2, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"Cookie": jason, "X-Any": "*"}},
			Route: &api.Route{Backends: []api.Backend{backend(nil, "version=v2")}}},
		{ID: "b", Priority: 1, Destination: "reviews", Match: &api.Match{
			Any:  []api.MatchCondition{{Headers: map[string]string{"cookie": jason}}},
			None: []api.MatchCondition{{Headers: map[string]string{"X-Bot": ".*"}}},
		}, Route: &api.Route{Backends: []api.Backend{backend(nil, "version=v1")}}},
		{ID: "c", Destination: "ratings", Match: &api.Match{All: []api.MatchCondition{{Headers: map[string]string{"Cookie": jason}}}},
			Actions: []api.Action{{Action: "delay", Duration: 1}}},
		{ID: "d", Destination: "ratings", Match: &api.Match{Headers: map[string]string{"Cookie": "^(.*?;)?(user=sam)(;.*)?$"}},
			Actions: []api.Action{{Action: "trace"}}},
	}
	s, err := Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	reviews, ratings := s.Destination("reviews"), s.Destination("ratings")
	a, b := reviews.Routes[0].Match, reviews.Routes[1].Match
	c, d := ratings.Actions[0].Match, ratings.Actions[1].Match
	if a.cond.headers[0].name != "Cookie" || a.cond.headers[1].name != "X-Any" {
		t.Fatalf("headers of a: %+v", a.cond.headers)
	}
	re := a.cond.headers[0].re
	for what, other := range map[string]*regexp.Regexp{
		"an any condition": b.any[0].headers[0].re, "another destination's all condition": c.all[0].headers[0].re,
	} {
		if other != re {
			t.Errorf("%s has its own regex for %s", what, jason)
		}
	}
	if a.cond.headers[1].re != b.nne[0].headers[0].re || a.cond.headers[1].re.String() != ".*" {
		t.Error(`"*" and ".*" are the same pattern and must share a regex`)
	}
	if d.cond.headers[0].re == re {
		t.Error("two patterns share a regex")
	}
	s2, err := Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Destination("reviews").Routes[0].Match.cond.headers[0].re == re {
		t.Error("two Compile calls share a regex: is there a process-wide cache?")
	}
}

// A bad pattern is reported wherever it is, even though it is compiled once.
func TestValidate_RepeatedBadRegex(t *testing.T) {
	bad := func(id string) api.Rule {
		r := route("reviews", backend(nil, "v1"))
		r.ID, r.Match = id, &api.Match{Headers: map[string]string{"Cookie": "(", "X-B": "("}}
		return r
	}
	err := Validate([]api.Rule{bad("a"), bad("b")})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 4 {
		t.Fatalf("want 4 problems, got %v", err)
	}
	want := "rules[1].match.headers.X-B: invalid regex \"(\": error parsing regexp: missing closing ): `(` (rule \"b\")"
	if got := ve.Problems[3].String(); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if _, err2 := Compile([]api.Rule{bad("a"), bad("b")}); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("Compile: %v\nValidate: %v", err2, err)
	}
}

func TestAction_AppliesTo(t *testing.T) {
	a := Action{Tags: []string{"version=v1"}}
	if !a.AppliesTo([]string{"version=v1", "zone=a"}) || a.AppliesTo([]string{"version=v2"}) || !(&Action{}).AppliesTo(nil) {
		t.Fatal("AppliesTo")
	}
}

// Amalgam8's example rule files (examples/rules) parse, validate and compile, in JSON and in YAML.
func TestParseFile_Examples(t *testing.T) {
	files, err := filepath.Glob("../../examples/rules/*")
	if err != nil || len(files) < 6 {
		t.Fatalf("example files: %v %v", files, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := ParseFile(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, err := Compile(rs); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	data, _ := os.ReadFile("../../examples/rules/bookinfo-jason-7s-delay.yaml")
	rs, _ := ParseFile(data)
	a := rs[0].Actions[0]
	if rs[0].ID != "bookinfo-jason-7s-delay" || rs[0].Match.Source.Name != "reviews" || a.Duration != 7 || *a.Probability != 1 || a.Tags[0] != "version=v1" {
		t.Fatalf("7s delay rule = %+v", rs[0])
	}
}

func TestParseFile_Errors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rules:\n- destination: x\n  route:\n    backends:\n    - tags: [v1]\n      weight: lots\n", `rules[0].route.backends[0].weight: expected a number, got the string "lots"`},
		{"rules:\n- destination: x\n  priority: high\n", `rules[0].priority: expected an integer`},
		{"rules:\n- destination: x\n  colour: red\n", `rules[0].colour: unknown field`},
		{`{"rules": [{"destination": "x", "route": {"backends": [{"tags": ["v1"]}], "timeout": 3}}]}`, `rules[0].route.timeout: unknown field`},
		{"rules: [\n", "neither valid JSON nor valid YAML"},
		{"other: 1\n", "other: unknown field"},
		{"{}", "rules: required"},
	}
	for _, tc := range tests {
		_, err := ParseFile([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want %q", tc.in, err, tc.want)
		}
	}
}

func ExampleValidate() {
	err := Validate([]api.Rule{{ID: "reviews-split", Destination: "reviews", Route: &api.Route{Backends: []api.Backend{
		{Tags: []string{"version=v1"}, Weight: f(0.7)}, {Tags: []string{"version=v2"}, Weight: f(0.5)},
	}}}})
	fmt.Println(err)
	// Output: rules[0].route.backends: weights of destination reviews sum to 1.2, more than 1 (rule "reviews-split")
}
