package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/a8fabric/a8/api"
)

// mustRules decodes rules written as JSON, for expected values that read like the wire.
func mustRules(t *testing.T, js string) []api.Rule {
	t.Helper()
	var rs []api.Rule
	if err := json.Unmarshal([]byte(js), &rs); err != nil {
		t.Fatalf("bad test rules: %v", err)
	}
	return rs
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func TestParseSelector(t *testing.T) {
	tests := []struct {
		in      string
		want    selector
		wantErr string
	}{
		{in: "v2(weight=0.25)", want: selector{version: "v2", kind: "weight", weight: 0.25}},
		{in: " version=v2 ( weight = 1 )", want: selector{version: "version=v2", kind: "weight", weight: 1}},
		{in: `v2(user="jason")`, want: selector{version: "v2", kind: "user", header: "Cookie", pattern: ".*?user=jason"}},
		{in: `v2(user=jason)`, want: selector{version: "v2", kind: "user", header: "Cookie", pattern: ".*?user=jason"}},
		{in: `v2(header="Foo:bar")`, want: selector{version: "v2", kind: "header", header: "Foo", pattern: "bar"}},
		{in: `version=v2(header="Cookie:^(.*?;)?(user=jason)(;.*)?$")`,
			want: selector{version: "version=v2", kind: "header", header: "Cookie", pattern: "^(.*?;)?(user=jason)(;.*)?$"}},
		{in: `v2,zone=a(header="X-Id:a:b")`, want: selector{version: "v2,zone=a", kind: "header", header: "X-Id", pattern: "a:b"}},
		{in: "v2", wantErr: "Invalid --selector value: v2"},
		{in: "(weight=0.5)", wantErr: "no version"},
		{in: "v2(weight=half)", wantErr: `weight "half" is not a number`},
		{in: "v2(weight=0)", wantErr: "must be in (0, 1]"},
		{in: "v2(weight=1.5)", wantErr: "must be in (0, 1]"},
		{in: `v2(user="")`, wantErr: "no user name"},
		{in: `v2(header="Foo")`, wantErr: `want header="Name:pattern"`},
		{in: `v2(header="Foo:")`, wantErr: "the header pattern is empty"},
		{in: "v2(weight=NaN)", wantErr: "weight NaN must be in (0, 1]"},
		{in: "v2(weight=nan)", wantErr: "weight nan must be in (0, 1]"},
		{in: "v2(weight=Inf)", wantErr: "weight Inf must be in (0, 1]"},
		{in: "v2(weight=-Inf)", wantErr: "must be in (0, 1]"},
		{in: ",(weight=0.5)", wantErr: `version "," has no tags`},
		{in: `,(user="jason")`, wantErr: `version "," has no tags`},
		{in: `v2(color="red")`, wantErr: `Unrecognized --selector key (color) in selector: v2(color="red")`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSelector(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBuildRouteRules(t *testing.T) {
	sel := func(s string) selector {
		t.Helper()
		x, err := parseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	tests := []struct {
		name      string
		def, src  string
		selectors []string
		want      string // the rules the Python a8ctl sent, in its order
	}{
		{
			name: "default only",
			def:  "v1",
			want: `[{"priority":1,"destination":"reviews","route":{"backends":[{"tags":["v1"]}]}}]`,
		},
		{
			name: "weights in the order given, before the default", def: "v1",
			selectors: []string{"v2(weight=0.25)", "v3(weight=0.1)"},
			want: `[{"priority":1,"destination":"reviews","route":{"backends":[
				{"tags":["v2"],"weight":0.25},{"tags":["v3"],"weight":0.1},{"tags":["v1"]}]}}]`,
		},
		{
			name: "user and header selectors: one rule each, the first highest", def: "version=v1",
			selectors: []string{`version=v3(user="jason")`, "version=v2(weight=0.5)", `version=v4(header="Foo:bar")`},
			want: `[
				{"priority":3,"destination":"reviews","match":{"headers":{"Cookie":".*?user=jason"}},"route":{"backends":[{"tags":["version=v3"]}]}},
				{"priority":2,"destination":"reviews","match":{"headers":{"Foo":"bar"}},"route":{"backends":[{"tags":["version=v4"]}]}},
				{"priority":1,"destination":"reviews","route":{"backends":[{"tags":["version=v2"],"weight":0.5},{"tags":["version=v1"]}]}}]`,
		},
		{
			name: "source: a source rule above a plain default", def: "v1", src: "productpage:v1",
			selectors: []string{"v2(weight=0.25)"},
			want: `[
				{"priority":2,"destination":"reviews","match":{"source":{"name":"productpage","tags":["v1"]}},"route":{"backends":[{"tags":["v2"],"weight":0.25},{"tags":["v1"]}]}},
				{"priority":1,"destination":"reviews","route":{"backends":[{"tags":["v1"]}]}}]`,
		},
		{
			name: "source with a user selector", def: "v1", src: "productpage",
			selectors: []string{`v2(user="jason")`},
			want: `[
				{"priority":3,"destination":"reviews","match":{"source":{"name":"productpage"},"headers":{"Cookie":".*?user=jason"}},"route":{"backends":[{"tags":["v2"]}]}},
				{"priority":2,"destination":"reviews","match":{"source":{"name":"productpage"}},"route":{"backends":[{"tags":["v1"]}]}},
				{"priority":1,"destination":"reviews","route":{"backends":[{"tags":["v1"]}]}}]`,
		},
		{
			name: "multi-tag versions", def: "version=v1,zone=a",
			want: `[{"priority":1,"destination":"reviews","route":{"backends":[{"tags":["version=v1","zone=a"]}]}}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sels []selector
			for _, s := range tt.selectors {
				sels = append(sels, sel(s))
			}
			got := buildRouteRules("reviews", tt.def, tt.src, sels)
			want := mustRules(t, tt.want)
			if jsonOf(t, got) != jsonOf(t, want) {
				t.Errorf("got\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, want))
			}
		})
	}
}

func TestSplitService(t *testing.T) {
	tests := []struct {
		in   string
		name string
		tags []string
	}{
		{"reviews", "reviews", nil},
		{"reviews:v2", "reviews", []string{"v2"}},
		{"reviews:version=v2,zone=a", "reviews", []string{"version=v2", "zone=a"}},
		{"reviews:", "reviews", nil},
	}
	for _, tt := range tests {
		name, tags := splitService(tt.in)
		if name != tt.name || !reflect.DeepEqual(tags, tt.tags) {
			t.Errorf("splitService(%q) = %q, %q; want %q, %q", tt.in, name, tags, tt.name, tt.tags)
		}
	}
}

func TestRouteSummary(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		want  routeEntry
	}{
		{
			name:  "default only",
			rules: `[{"id":"a","priority":1,"destination":"helloworld","route":{"backends":[{"tags":["version=v1"]}]}}]`,
			want:  routeEntry{Service: "helloworld", Default: "version=v1"},
		},
		{
			name:  "weighted",
			rules: `[{"id":"a","priority":1,"destination":"helloworld","route":{"backends":[{"tags":["version=v2"],"weight":0.25},{"tags":["version=v1"]}]}}]`,
			want:  routeEntry{Service: "helloworld", Default: "version=v1", Selectors: []string{"version=v2(weight=0.25)"}},
		},
		{
			name: "Amalgam8's route-list test: a header rule and a weighted default",
			rules: `[{"id":"e3f","priority":2,"destination":"reviews","match":{"headers":{"Foo":"bar"}},"route":{"backends":[{"tags":["v2"]}]}},
				{"id":"08e","priority":1,"destination":"reviews","route":{"backends":[{"weight":0.5,"tags":["v3"]},{"tags":["v2"]}]}}]`,
			want: routeEntry{Service: "reviews", Default: "v2", Selectors: []string{`v2(header="Foo:bar")`, "v3(weight=0.5)"}},
		},
		{
			name: "user cookie and regex cookie, in priority order whatever the input order",
			rules: `[{"id":"d","priority":1,"destination":"ratings","route":{"backends":[{"tags":["v1"]}]}},
				{"id":"u","priority":2,"destination":"ratings","match":{"headers":{"Cookie":".*?user=jason"}},"route":{"backends":[{"tags":["v2"]}]}},
				{"id":"r","priority":3,"destination":"ratings","match":{"headers":{"Cookie":"^(.*?;)?(user=jason)(;.*)?$"}},"route":{"backends":[{"tags":["version=v2"]}]}}]`,
			want: routeEntry{Service: "ratings", Default: "v1", Selectors: []string{
				`version=v2(header="Cookie:^(.*?;)?(user=jason)(;.*)?$")`, `v2(user="jason")`}},
		},
		{
			name: "source and weights in a matched rule",
			rules: `[{"id":"s","priority":2,"destination":"reviews","match":{"source":{"name":"productpage","tags":["v1"]},"headers":{"B":"2","A":"1"}},
				"route":{"backends":[{"tags":["v2"],"weight":0.25},{"tags":["v1"]}]}}]`,
			want: routeEntry{Service: "reviews", Selectors: []string{
				`v2(source=productpage:v1,header="A:1",header="B:2",weight=0.25)`, `v1(source=productpage:v1,header="A:1",header="B:2")`}},
		},
		{
			name: "the highest-priority rule without match gives the default",
			rules: `[{"id":"low","priority":1,"destination":"x","route":{"backends":[{"tags":["v1"]}]}},
				{"id":"high","priority":5,"destination":"x","route":{"backends":[{"tags":["v9"]}]}}]`,
			want: routeEntry{Service: "x", Default: "v9"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := routeSummary(tt.want.Service, mustRules(t, tt.rules))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestRouteEntriesAndRows(t *testing.T) {
	byDest := map[string][]api.Rule{
		"reviews": mustRules(t, `[{"id":"a","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"],"weight":0.1},{"tags":["v1"]}]}},
			{"id":"b","priority":2,"destination":"reviews","match":{"headers":{"Cookie":".*?user=jason"}},"route":{"backends":[{"tags":["v2"]}]}}]`),
		"details": mustRules(t, `[{"id":"c","priority":1,"destination":"details","route":{"backends":[{"tags":["v1"]}]}}]`),
	}
	registered := []string{"ratings", "reviews", "productpage"}

	all := routeEntries(byDest, registered, nil)
	var b strings.Builder
	renderTable(&b, routeHeader, routeRows(all))
	want := `+-------------+-----------------+----------------------------------+
| Service     | Default Version | Version Selectors                |
+-------------+-----------------+----------------------------------+
| details     | v1              |                                  |
| productpage |                 |                                  |
| ratings     |                 |                                  |
| reviews     | v1              | v2(user="jason"), v2(weight=0.1) |
+-------------+-----------------+----------------------------------+
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	// With -s, only the services asked for, registered or not.
	some := routeEntries(map[string][]api.Rule{"reviews": byDest["reviews"]}, registered, []string{"reviews", "ratings"})
	if len(some) != 2 || some[0].Service != "ratings" || some[1].Service != "reviews" {
		t.Errorf("filtered entries %+v", some)
	}
	if got := jsonOf(t, routeEntries(nil, nil, nil)); got != "[]" {
		t.Errorf("no routes: %s, want []", got)
	}
}
