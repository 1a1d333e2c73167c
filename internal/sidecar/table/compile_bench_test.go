package table

import (
	"fmt"
	"testing"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/rules"
)

// benchScale is a large tenant: 1,000 services of 2 or 3 versions (every third has a v3) with 2
// instances each (4,668 instances), and 10 rules per service (10,000 rules: 7 route rules, one of
// them for another source, and 3 action rules), with header regexes that are unique to the
// destination, shared by all of them, or in between.
func benchScale() ([]api.Rule, []api.Instance) {
	const services = 1000
	var rs []api.Rule
	var insts []api.Instance
	for i := range services {
		name := fmt.Sprintf("svc%04d", i)
		versions := []string{"version=v1", "version=v2"}
		if i%3 == 0 {
			versions = append(versions, "version=v3")
		}
		for v, tag := range versions {
			for k := range 2 {
				insts = append(insts, inst(name, fmt.Sprintf("10.%d.%d.%d:9080", i/256, i%256, 1+2*v+k), tag, "zone=z"+fmt.Sprint(k)))
			}
		}
		canary := versions[len(versions)-1]
		split := []api.Backend{{Tags: []string{"version=v1"}, Weight: f(0.9)}, {Tags: []string{"version=v2"}}}
		if len(versions) == 3 {
			split = []api.Backend{{Tags: []string{"version=v1"}, Weight: f(0.8)}, {Tags: []string{"version=v2"}, Weight: f(0.15)},
				{Tags: []string{"version=v3"}}}
		}
		id := func(s string) string { return name + "-" + s }
		rs = append(rs,
			api.Rule{ID: id("user"), Priority: 10, Destination: name,
				Match: &api.Match{Headers: map[string]string{"Cookie": fmt.Sprintf("^(.*?;)?(user=u%d)(;.*)?$", i)}},
				Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}}}}},
			api.Rule{ID: id("jason"), Priority: 9, Destination: name,
				Match: &api.Match{Headers: map[string]string{"Cookie": "^(.*?;)?(user=jason)(;.*)?$"}},
				Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}}}}},
			api.Rule{ID: id("canary"), Priority: 8, Destination: name,
				Match: &api.Match{Headers: map[string]string{"X-Canary": "^yes$"}},
				Route: &api.Route{HTTPReqRetries: func(n int) *int { return &n }(2), Backends: []api.Backend{{Tags: []string{canary},
					Resilience: &api.Resilience{MaxConnections: 100, ConsecutiveErrors: 3, SleepWindow: 10}}}}},
			api.Rule{ID: id("mobile"), Priority: 7, Destination: name,
				Match: &api.Match{Headers: map[string]string{"User-Agent": ".*(Android|iPhone).*"}, Source: &api.Source{Name: "productpage"}},
				Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, LBType: "least_request"}}}},
			api.Rule{ID: id("api"), Priority: 6, Destination: name,
				Match: &api.Match{Headers: map[string]string{"X-Api-Version": "^2(\\.[0-9]+)?$", "X-Tenant": fmt.Sprintf("^t%d$", i%50)}},
				Route: &api.Route{URI: &api.URI{Prefix: "/api/", PrefixRewrite: "/v2/"}, Backends: []api.Backend{{Tags: []string{"version=v2", "zone=z0"}}}}},
			api.Rule{ID: id("gateway"), Priority: 5, Destination: name, // for another source: dropped by this sidecar
				Match: &api.Match{Source: &api.Source{Name: "gateway"}},
				Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v1"}}}}},
			api.Rule{ID: id("split"), Priority: 1, Destination: name, Route: &api.Route{Backends: split}},
			api.Rule{ID: id("delay"), Priority: 3, Destination: name,
				Match:   &api.Match{Source: &api.Source{Name: "productpage", Tags: []string{"version=v1"}}, Headers: map[string]string{"Cookie": "^(.*?;)?(user=tester)(;.*)?$"}},
				Actions: []api.Action{{Action: api.ActionDelay, Duration: 2, Tags: []string{"version=v2"}}}},
			api.Rule{ID: id("abort"), Priority: 2, Destination: name,
				Match:   &api.Match{Headers: map[string]string{"X-Fault": fmt.Sprintf("^abort-%d$", i%10)}},
				Actions: []api.Action{{Action: api.ActionAbort, ReturnCode: func(n int) *int { return &n }(503), Probability: f(0.1)}}},
			api.Rule{ID: id("trace"), Priority: 1, Destination: name,
				Match:   &api.Match{Headers: map[string]string{"X-Trace": ".+"}},
				Actions: []api.Action{{Action: api.ActionTrace, LogKey: "gremlin", LogValue: name}}},
		)
	}
	return rs, insts
}

// BenchmarkCompile measures what a sidecar does when a large tenant's rules or instances change:
// rules.Compile (validation, regexes) and table.Build (the join with the instances), apart and
// together. Build reuses one Pool, as the sidecar does.
func BenchmarkCompile(b *testing.B) {
	rs, insts := benchScale()
	check := func(b *testing.B, tbl *Table) {
		if n := len(tbl.Destinations()); n != 1000 {
			b.Fatalf("%d destinations", n)
		}
		d := tbl.Lookup("svc0003")
		if len(d.Routes) != 6 || len(d.Actions) != 3 || len(d.All.Endpoints) != 6 {
			b.Fatalf("svc0003: %d routes, %d actions, %d endpoints", len(d.Routes), len(d.Actions), len(d.All.Endpoints))
		}
		r, _, c := d.Pick(productpage, rules.HTTPHeader{"Cookie": {"user=u3"}}, "/", 0.5)
		if r == nil || r.Rule.ID != "svc0003-user" || c.Key != "svc0003:version=v2" || len(c.Endpoints) != 2 {
			b.Fatalf("svc0003 pick: %v %v", r, c)
		}
	}
	var set *rules.Set // the last one "all" compiled, for "build"
	b.Run("all", func(b *testing.B) {
		pool := NewPool()
		var tbl *Table
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if set, err = rules.Compile(rs); err != nil {
				b.Fatal(err)
			}
			tbl = Build(set, 1, insts, 1, Options{Self: productpage, Pool: pool})
		}
		check(b, tbl)
	})
	if set == nil { // -bench left "all" out
		var err error
		if set, err = rules.Compile(rs); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("build", func(b *testing.B) {
		pool := NewPool()
		check(b, Build(set, 1, insts, 1, Options{Self: productpage, Pool: pool}))
		b.ReportAllocs()
		for b.Loop() {
			Build(set, 1, insts, 1, Options{Self: productpage, Pool: pool})
		}
	})
	b.Run("rules", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rules.Compile(rs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
