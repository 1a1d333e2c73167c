package resilience

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/rules"
)

func readTestdata[T any](t *testing.T, file string, decode func([]byte) (T, error)) T {
	t.Helper()
	data, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	v, err := decode(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

func bookinfoTopology(t *testing.T) api.Topology {
	return readTestdata(t, "bookinfo-topology.json", DecodeTopology)
}

// rulesJSON compares rules as JSON values.
func rulesJSON(t *testing.T, got []api.Rule, want string) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var gv, wv any
	if err := json.Unmarshal(g, &gv); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &wv); err != nil {
		t.Fatalf("want: %v", err)
	}
	if !reflect.DeepEqual(gv, wv) {
		pretty, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("rules:\n%s\nwant:\n%s", pretty, want)
	}
}

const trace = `{"action":"trace","log_key":"gremlin_recipe_id","log_value":"r1"`
const match = `"tags":["r1"],"match":{"source":{"name":%q,"tags":[%q]},"headers":{"X-Request-ID":"*"}}`

func TestRulesReferenceRecipe(t *testing.T) {
	req := api.RecipeRequest{
		Topology:  bookinfoTopology(t),
		Scenarios: readTestdata(t, "bookinfo-gremlins.json", DecodeScenarios),
	}
	got, err := Rules("r1", req)
	if err != nil {
		t.Fatal(err)
	}
	rulesJSON(t, got, `[
		{"id":"r1-1","priority":100,"tags":["r1"],"destination":"ratings",
		 "match":{"source":{"name":"reviews","tags":["version=v2"]},"headers":{"X-Request-ID":"*"}},
		 "actions":[`+trace+`,"tags":["version=v1"]},
		            {"action":"delay","duration":7,"probability":1,"tags":["version=v1"]}]},
		{"id":"r1-2","priority":100,"tags":["r1"],"destination":"productpage",
		 "match":{"source":{"name":"gateway","tags":["version=none"]},"headers":{"X-Request-ID":"*"}},
		 "actions":[`+trace+`,"tags":["version=v1"]}]},
		{"id":"r1-3","priority":100,"tags":["r1"],"destination":"reviews",
		 "match":{"source":{"name":"productpage","tags":["version=v1"]},"headers":{"X-Request-ID":"*"}},
		 "actions":[`+trace+`,"tags":["version=v2"]}]},
		{"id":"r1-4","priority":100,"tags":["r1"],"destination":"details",
		 "match":{"source":{"name":"productpage","tags":["version=v1"]},"headers":{"X-Request-ID":"*"}},
		 "actions":[`+trace+`,"tags":["version=v1"]}]}
	]`)

	// The rules do what they say in a sidecar: reviews v2's requests to ratings v1 are traced and
	// delayed 7s, when they carry the header.
	set, err := rules.Compile(got)
	if err != nil {
		t.Fatal(err)
	}
	h := rules.HTTPHeader{"X-Request-Id": {"abc"}}
	a := set.Destination("ratings").Action(rules.Caller{Name: "reviews", Tags: []string{"version=v2"}}, h)
	if a == nil || a.ID != "r1-1" || len(a.Actions) != 2 || a.Actions[1].Delay.Seconds() != 7 {
		t.Fatalf("reviews v2 -> ratings: %+v", a)
	}
	if a := set.Destination("ratings").Action(rules.Caller{Name: "reviews", Tags: []string{"version=v2"}}, rules.HTTPHeader{}); a != nil {
		t.Errorf("a request without the header matched %s", a.ID)
	}
	if a := set.Destination("ratings").Action(rules.Caller{Name: "reviews", Tags: []string{"version=v3"}}, h); a != nil {
		t.Errorf("reviews v3 matched %s", a.ID)
	}
}

// multi is a topology with three versions of reviews, an untagged ratings and a mutual pair.
const multi = `{
	"services": [
		{"name": "gateway"},
		{"name": "productpage:version=v1"},
		{"name": "reviews:version=v1"}, {"name": "reviews:version=v2"}, {"name": "reviews:version=v3"},
		{"name": "details:version=v1"},
		{"name": "ratings"}
	],
	"dependencies": {
		"gateway": ["productpage:version=v1"],
		"productpage:version=v1": ["reviews:version=v1", "reviews:version=v2", "reviews:version=v3", "details:version=v1"],
		"reviews:version=v2": ["ratings"],
		"reviews:version=v3": ["ratings"]
	}
}`

func newRequest(t *testing.T, topology, gremlins string) api.RecipeRequest {
	t.Helper()
	tp, err := DecodeTopology([]byte(topology))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := DecodeScenarios([]byte(gremlins))
	if err != nil {
		t.Fatal(err)
	}
	return api.RecipeRequest{Topology: tp, Scenarios: sc}
}

func TestRules(t *testing.T) {
	tests := []struct {
		name     string
		topology string
		gremlins string
		want     string // the rules as JSON; "" to skip
		check    func(t *testing.T, rs []api.Rule)
	}{
		{
			name:     "merging versions of one destination into one rule",
			topology: multi,
			gremlins: `{"gremlins":[
				{"scenario":"delay_requests","source":"productpage:version=v1","dest":"reviews:version=v2","delaytime":"1s500ms","delayprobability":0.5},
				{"scenario":"abort_requests","source":"productpage:version=v1","dest":"reviews:version=v3","errorcode":503}]}`,
			check: func(t *testing.T, rs []api.Rule) {
				r := rs[0]
				if r.ID != "r1-1" || r.Destination != "reviews" || len(rs) != 5 {
					t.Fatalf("first rule %s -> %s of %d", r.ID, r.Destination, len(rs))
				}
				rulesJSON(t, []api.Rule{{Actions: r.Actions}}, `[{"actions":[
					`+trace+`,"tags":["version=v2"]},`+trace+`,"tags":["version=v3"]},`+trace+`,"tags":["version=v1"]},
					{"action":"delay","duration":1.5,"probability":0.5,"tags":["version=v2"]},
					{"action":"abort","return_code":503,"probability":1,"tags":["version=v3"]}]}]`)
			},
		},
		{
			name:     "untagged destination gets one untagged trace; untagged source has no tags",
			topology: multi,
			gremlins: `{"gremlins":[{"scenario":"abort_requests","dest":"ratings"}]}`,
			check: func(t *testing.T, rs []api.Rule) {
				// abort without source: every caller of ratings (reviews v2 and v3), errorcode -1.
				for i, src := range []string{"version=v2", "version=v3"} {
					r := rs[i]
					if r.Destination != "ratings" || r.Match.Source.Tags[0] != src {
						t.Fatalf("rule %d: %s from %v", i, r.Destination, r.Match.Source)
					}
					rulesJSON(t, []api.Rule{{Actions: r.Actions}}, `[{"actions":[`+trace+`},{"action":"abort","return_code":-1,"probability":1}]}]`)
				}
				gw := findRule(t, rs, "gateway", "productpage")
				if gw.Match.Source.Tags != nil {
					t.Errorf("gateway source tags %v", gw.Match.Source.Tags)
				}
			},
		},
		{
			name:     "without dest: every dependency of source",
			topology: multi,
			gremlins: `{"gremlins":[{"scenario":"delay_requests","source":"productpage:version=v1"}]}`,
			check: func(t *testing.T, rs []api.Rule) {
				reviews := findRule(t, rs, "productpage:version=v1", "reviews")
				delays := 0
				for _, a := range reviews.Actions {
					if a.Action == api.ActionDelay {
						delays++
						if a.Duration != 1 || *a.Probability != 1 {
							t.Errorf("default delay: %+v", a)
						}
					}
				}
				if delays != 3 {
					t.Errorf("%d delays to reviews, want one per version", delays)
				}
				details := findRule(t, rs, "productpage:version=v1", "details")
				if len(details.Actions) != 2 || details.Actions[1].Action != api.ActionDelay {
					t.Errorf("details: %+v", details.Actions)
				}
			},
		},
		{
			name:     "partition: both directions, errorcode 0",
			topology: `{"services":[{"name":"a:v=1"},{"name":"b:v=2"}],"dependencies":{"a:v=1":["b:v=2"]}}`,
			gremlins: `{"gremlins":[{"scenario":"partition_services","source":"a:v=1","dest":"b:v=2","srcprobability":0.8,"dstprobability":0.6}]}`,
			want: `[
				{"id":"r1-1","priority":100,` + sprintf(match, "a", "v=1") + `,"destination":"b",
				 "actions":[` + trace + `,"tags":["v=2"]},{"action":"abort","return_code":0,"probability":0.8,"tags":["v=2"]}]},
				{"id":"r1-2","priority":100,` + sprintf(match, "b", "v=2") + `,"destination":"a",
				 "actions":[` + trace + `,"tags":["v=1"]},{"action":"abort","return_code":0,"probability":0.6,"tags":["v=1"]}]}]`,
		},
		{
			name:     "partition of services connected the other way",
			topology: `{"services":[{"name":"a:v=1"},{"name":"b:v=2"}],"dependencies":{"a:v=1":["b:v=2"]}}`,
			gremlins: `{"gremlins":[{"scenario":"partition_services","source":"b:v=2","dest":"a:v=1","errorcode":503}]}`,
			check: func(t *testing.T, rs []api.Rule) {
				if len(rs) != 2 || *rs[0].Actions[1].ReturnCode != 503 || *rs[1].Actions[1].Probability != 1 {
					t.Errorf("%+v", rs)
				}
			},
		},
		{
			name:     "crash: every caller, reset",
			topology: multi,
			gremlins: `{"gremlins":[{"scenario":"crash_service","dest":"ratings"}]}`,
			check: func(t *testing.T, rs []api.Rule) {
				for _, tag := range []string{"version=v2", "version=v3"} {
					r := findRule(t, rs, "reviews:"+tag, "ratings")
					rulesJSON(t, []api.Rule{{Actions: r.Actions}}, `[{"actions":[`+trace+`},{"action":"abort","return_code":0,"probability":1}]}]`)
				}
			},
		},
		{
			name:     "overload: delay 10s at 0.5 then 503 at 0.5, overridable",
			topology: bookinfo,
			gremlins: `{"gremlins":[{"scenario":"overload_service","dest":"reviews:version=v2"},
				{"scenario":"overload_service","source":"reviews:version=v2","dest":"ratings:version=v1","delaytime":"2s","abortprobability":0.1,"errorcode":429}]}`,
			check: func(t *testing.T, rs []api.Rule) {
				r := findRule(t, rs, "productpage:version=v1", "reviews")
				rulesJSON(t, []api.Rule{{Actions: r.Actions}}, `[{"actions":[`+trace+`,"tags":["version=v2"]},
					{"action":"delay","duration":10,"probability":0.5,"tags":["version=v2"]},
					{"action":"abort","return_code":503,"probability":0.5,"tags":["version=v2"]}]}]`)
				r = findRule(t, rs, "reviews:version=v2", "ratings")
				rulesJSON(t, []api.Rule{{Actions: r.Actions}}, `[{"actions":[`+trace+`,"tags":["version=v1"]},
					{"action":"delay","duration":2,"probability":0.5,"tags":["version=v1"]},
					{"action":"abort","return_code":429,"probability":0.1,"tags":["version=v1"]}]}]`)
			},
		},
		{
			name:     "no gremlins: trace-only rules for every dependency",
			topology: bookinfo,
			gremlins: `{"gremlins":[]}`,
			check: func(t *testing.T, rs []api.Rule) {
				if len(rs) != 4 {
					t.Fatalf("%d rules, want 4", len(rs))
				}
				for _, r := range rs {
					if len(r.Actions) != 1 || r.Actions[0].Action != api.ActionTrace {
						t.Errorf("%s: %+v", r.ID, r.Actions)
					}
				}
			},
		},
		{
			name: "overlapping sources: the refined one carries both and comes first",
			topology: `{"services":[{"name":"pp"},{"name":"pp:version=v1"},{"name":"rv:version=v2"}],
				"dependencies":{"pp":["rv:version=v2"],"pp:version=v1":["rv:version=v2"]}}`,
			gremlins: `{"gremlins":[{"scenario":"delay_requests","source":"pp","dest":"rv:version=v2"},
				{"scenario":"abort_requests","source":"pp:version=v1","dest":"rv:version=v2","errorcode":500}]}`,
			check: func(t *testing.T, rs []api.Rule) {
				generic, refined := findRule(t, rs, "pp", "rv"), findRule(t, rs, "pp:version=v1", "rv")
				if generic.Priority != 100 || refined.Priority != 101 {
					t.Errorf("priorities %d, %d", generic.Priority, refined.Priority)
				}
				if len(generic.Actions) != 2 || len(refined.Actions) != 3 || refined.Actions[1].Action != api.ActionAbort || refined.Actions[2].Action != api.ActionDelay {
					t.Errorf("generic %+v\nrefined %+v", generic.Actions, refined.Actions)
				}
				set, err := rules.Compile(rs)
				if err != nil {
					t.Fatal(err)
				}
				a := set.Destination("rv").Action(rules.Caller{Name: "pp", Tags: []string{"version=v1"}}, rules.HTTPHeader{"X-Request-Id": {"x"}})
				if a == nil || a.ID != refined.ID {
					t.Errorf("pp v1 got %+v, want the refined rule", a)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Rules("r1", newRequest(t, tt.topology, tt.gremlins))
			if err != nil {
				t.Fatal(err)
			}
			if err := rules.Validate(rs); err != nil {
				t.Fatal(err)
			}
			if tt.want != "" {
				rulesJSON(t, rs, tt.want)
			}
			if tt.check != nil {
				tt.check(t, rs)
			}
			again, _ := Rules("r1", newRequest(t, tt.topology, tt.gremlins))
			if !reflect.DeepEqual(rs, again) {
				t.Error("the translation is not deterministic")
			}
		})
	}
}

// sprintf is fmt.Sprintf with %q written as JSON strings.
func sprintf(format string, args ...any) string {
	out := format
	for _, a := range args {
		q, _ := json.Marshal(a)
		out = strings.Replace(out, "%q", string(q), 1)
	}
	return out
}

const bookinfo = `{
	"services": [{"name": "gateway:version=none"}, {"name": "productpage:version=v1"}, {"name": "reviews:version=v2"},
		{"name": "details:version=v1"}, {"name": "ratings:version=v1"}],
	"dependencies": {
		"gateway:version=none": ["productpage:version=v1"],
		"productpage:version=v1": ["reviews:version=v2", "details:version=v1"],
		"reviews:version=v2": ["ratings:version=v1"]
	}
}`

// findRule returns the rule from src (as in the topology) to the destination name dst.
func findRule(t *testing.T, rs []api.Rule, src, dst string) api.Rule {
	t.Helper()
	name, tags := api.SplitService(src)
	for _, r := range rs {
		if r.Destination == dst && r.Match.Source.Name == name && reflect.DeepEqual(r.Match.Source.Tags, tags) {
			return r
		}
	}
	t.Fatalf("no rule from %s to %s", src, dst)
	return api.Rule{}
}

func TestRulesHeader(t *testing.T) {
	req := newRequest(t, bookinfo, `{"gremlins":[]}`)
	for _, tt := range []struct {
		header, pattern, want string
	}{
		{"", "", "*"},
		{"X-Test", "*", "*"},
		{"Cookie", ".*?user=jason", ".*?user=jason"}, // Amalgam8's Go a8ctl prefixed -p with ".*?"
		{"X-Test", ".*?*", "*"},                      // what it sent for -p '*'
		{"X-Test", "^test-[0-9]+$", "^test-[0-9]+$"},
	} {
		req.Header, req.HeaderPattern = tt.header, tt.pattern
		rs, err := Rules("r1", req)
		if err != nil {
			t.Fatalf("%q %q: %v", tt.header, tt.pattern, err)
		}
		header := tt.header
		if header == "" {
			header = "X-Request-ID"
		}
		if got := rs[0].Match.Headers; len(got) != 1 || got[header] != tt.want {
			t.Errorf("%q %q: headers %v, want %s: %s", tt.header, tt.pattern, got, header, tt.want)
		}
	}
}

func TestRulesErrors(t *testing.T) {
	tests := []struct {
		name               string
		id                 string
		topology, gremlins string
		header, pattern    string
		wantErr            string
	}{
		{name: "unknown source", topology: bookinfo, gremlins: `{"gremlins":[{"scenario":"delay_requests","source":"reviews:version=v3","dest":"ratings:version=v1"}]}`,
			wantErr: `scenarios.gremlins[0].source: "reviews:version=v3" is not a service of the topology`},
		{name: "unknown dest", topology: bookinfo, gremlins: `{"gremlins":[{"scenario":"delay_requests","dest":"ratings"}]}`,
			wantErr: `scenarios.gremlins[0].dest: "ratings" is not a service of the topology`},
		{name: "edge not in topology", topology: bookinfo, gremlins: `{"gremlins":[{"scenario":"abort_requests","source":"reviews:version=v2","dest":"details:version=v1"}]}`,
			wantErr: `scenarios.gremlins[0]: reviews:version=v2 does not call details:version=v1 in the topology`},
		{name: "partition not connected", topology: bookinfo, gremlins: `{"gremlins":[{"scenario":"partition_services","source":"reviews:version=v2","dest":"details:version=v1"}]}`,
			wantErr: `scenarios.gremlins[0]: reviews:version=v2 and details:version=v1 are not connected`},
		{name: "no dependents", topology: bookinfo, gremlins: `{"gremlins":[{"scenario":"crash_service","dest":"gateway:version=none"}]}`,
			wantErr: `scenarios.gremlins[0]: applies to no request: without source it applies to every caller of gateway:version=none, and the topology lists none`},
		{name: "no dependencies", topology: bookinfo, gremlins: `{"gremlins":[{"scenario":"delay_requests","source":"ratings:version=v1"}]}`,
			wantErr: `scenarios.gremlins[0]: applies to no request: without dest it applies to every service that ratings:version=v1 calls`},
		{name: "gremlin index", topology: bookinfo, gremlins: `{"gremlins":[{"scenario":"delay_requests","dest":"ratings:version=v1"},{"scenario":"delay_requests","source":"x"}]}`,
			wantErr: `scenarios.gremlins[1].source: "x" is not a service`},
		{name: "bad pattern", topology: bookinfo, gremlins: `{"gremlins":[]}`, pattern: "(",
			wantErr: `header_pattern: "(" is not a regular expression`},
		{name: "bad header", topology: bookinfo, gremlins: `{"gremlins":[]}`, header: "X Test",
			wantErr: `header: "X Test" is not an HTTP header name`},
		{name: "no id", id: "-", topology: bookinfo, gremlins: `{"gremlins":[]}`, wantErr: `id: the recipe id must not be empty`},
		{name: "id with space", id: "a b", topology: bookinfo, gremlins: `{"gremlins":[]}`, wantErr: `id: the recipe id "a b" contains spaces`},
		{name: "nothing to do", topology: `{"services":[{"name":"a"}]}`, gremlins: `{"gremlins":[]}`, wantErr: `nothing to do`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t, tt.topology, tt.gremlins)
			req.Header, req.HeaderPattern = tt.header, tt.pattern
			id := tt.id
			switch id {
			case "":
				id = "r1"
			case "-":
				id = ""
			}
			_, err := Rules(id, req)
			checkErr(t, err, tt.wantErr)
		})
	}

	// Invalid values that bypassed decoding are refused too, all at once, with paths.
	p := 2.0
	req := api.RecipeRequest{
		Topology: api.Topology{Services: []api.TopologyService{{Name: "a"}, {Name: "a"}, {Name: "b"}},
			Dependencies: map[string][]string{"a": {"b", "c"}}},
		Scenarios: api.Scenarios{Gremlins: []api.Gremlin{{Scenario: "delay_requests", Dest: "b", DelayTime: "7x", DelayProbability: &p}}},
	}
	_, err := Rules("r1", req)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *ValidationError, got %v", err)
	}
	var paths []string
	for _, p := range ve.Problems {
		paths = append(paths, p.Path)
	}
	want := []string{"topology.services[1].name", "topology.dependencies.a[1]", "scenarios.gremlins[0].delaytime", "scenarios.gremlins[0].delayprobability"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("problems at %v, want %v (%v)", paths, want, err)
	}
}
