package cli

import (
	"strings"
	"testing"

	"github.com/a8fabric/a8/api"
)

func TestParseActionSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    string // the action as JSON
		wantErr string
	}{
		{in: "v1(0.5->delay=5)", want: `{"action":"delay","duration":5,"probability":0.5,"tags":["v1"]}`},
		{in: "version=v1(1->delay=7)", want: `{"action":"delay","duration":7,"probability":1,"tags":["version=v1"]}`},
		{in: "v2(1->abort=400)", want: `{"action":"abort","probability":1,"tags":["v2"],"return_code":400}`},
		{in: " v2,zone=a ( 0.25 -> abort = -1 )", want: `{"action":"abort","probability":0.25,"tags":["v2","zone=a"],"return_code":-1}`},
		{in: "v1(0.5->delay=0.25)", want: `{"action":"delay","duration":0.25,"probability":0.5,"tags":["v1"]}`},
		{in: "v1", wantErr: "Invalid --action value: v1"},
		{in: "(1->delay=5)", wantErr: "no version"},
		{in: "v1(1-delay=5)", wantErr: "no ->"},
		{in: "v1(1->delay)", wantErr: "no =value"},
		{in: "v1(often->delay=5)", wantErr: `probability "often" is not a number`},
		{in: "v1(2->delay=5)", wantErr: "probability 2 must be in (0, 1]"},
		{in: "v1(0->abort=500)", wantErr: "must be in (0, 1]"},
		{in: "v1(1->delay=-3)", wantErr: "not a positive number of seconds"},
		{in: "v1(1->abort=5xx)", wantErr: `abort code "5xx" is not a whole number`},
		{in: "v1(1->explode=x)", wantErr: "Invalid --action type: v1(1->explode=x)"},
		// Traces: the rule's id is the value unless one is given (action-add fills it in).
		{in: "v1(trace)", want: `{"action":"trace","tags":["v1"],"log_key":"gremlin_recipe_id"}`},
		{in: "version=v2,zone=a( trace = run-7 )", want: `{"action":"trace","tags":["version=v2","zone=a"],"log_key":"gremlin_recipe_id","log_value":"run-7"}`},
		{in: "v1(1->trace=x)", wantErr: "a trace has no probability: write version(trace) or version(trace=value)"},
		{in: "v1(0.5->trace)", wantErr: "a trace has no probability"},
		// Numbers that are not in range: NaN and the infinities too.
		{in: "v1(NaN->delay=5)", wantErr: "probability NaN must be in (0, 1]"},
		{in: "v1(nan->abort=500)", wantErr: "probability NaN must be in (0, 1]"},
		{in: "v1(Inf->delay=5)", wantErr: "probability +Inf must be in (0, 1]"},
		{in: "v1(-Inf->delay=5)", wantErr: "probability -Inf must be in (0, 1]"},
		{in: "v1(1->delay=NaN)", wantErr: `delay "NaN" is not a positive number of seconds, at most 86400`},
		{in: "v1(1->delay=Inf)", wantErr: `delay "Inf" is not a positive number of seconds`},
		{in: "v1(1->delay=+Infinity)", wantErr: `delay "+Infinity" is not a positive number of seconds`},
		{in: "v1(1->delay=86401)", wantErr: `delay "86401" is not a positive number of seconds, at most 86400`},
		// A version without tags.
		{in: ",(1->delay=1)", wantErr: `version "," has no tags`},
		{in: " , ,(trace)", wantErr: `version ", ," has no tags`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseActionSpec(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := jsonOf(t, got); g != tt.want {
				t.Errorf("got %s, want %s", g, tt.want)
			}
		})
	}
}

func TestMatchHeaders(t *testing.T) {
	tests := []struct {
		name             string
		headers, cookies []string
		want             string
		wantErr          string
	}{
		{name: "none", want: "null"},
		{name: "header", headers: []string{"Foo:bar"}, want: `{"Foo":"bar"}`},
		{name: "pattern with colons", headers: []string{"X-Time: ^10:00$"}, want: `{"X-Time":" ^10:00$"}`},
		{name: "cookie", cookies: []string{"user=jason"}, want: `{"Cookie":".*?user=jason"}`},
		{name: "both", headers: []string{"Foo:bar"}, cookies: []string{"user=jason"}, want: `{"Cookie":".*?user=jason","Foo":"bar"}`},
		{name: "no colon", headers: []string{"Foo"}, wantErr: "want Name:pattern"},
		{name: "header twice", headers: []string{"Foo:a", "Foo:b"}, wantErr: "given twice"},
		{name: "two cookies", cookies: []string{"a=1", "b=2"}, wantErr: "--cookie given 2 times"},
		{name: "cookie and Cookie header", headers: []string{"Cookie:x"}, cookies: []string{"a=1"}, wantErr: "both set the Cookie pattern"},
		{name: "cookie without =", cookies: []string{"jason"}, wantErr: "want key=value"},
		{name: "cookie without key", cookies: []string{"=jason"}, wantErr: "want key=value"},
		{name: "empty pattern", headers: []string{"X:"}, wantErr: `--header "X:": the pattern after the colon is empty`},
		{name: "blank pattern", headers: []string{"X:  "}, wantErr: "the pattern after the colon is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := matchHeaders(tt.headers, tt.cookies)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := jsonOf(t, got); g != tt.want {
				t.Errorf("got %s, want %s", g, tt.want)
			}
		})
	}
}

func TestNextActionPriority(t *testing.T) {
	tests := []struct {
		priorities []int
		want       int
	}{
		{nil, 10},
		{[]int{5}, 10},
		{[]int{9, 1}, 10},
		{[]int{10}, 20},
		{[]int{10, 15}, 25},
		{[]int{15, 10}, 25},
		{[]int{100, 3, 40}, 110},
	}
	for _, tt := range tests {
		var rs []api.Rule
		for _, p := range tt.priorities {
			rs = append(rs, api.Rule{Priority: p})
		}
		if got := nextActionPriority(rs); got != tt.want {
			t.Errorf("nextActionPriority(%v) = %d, want %d", tt.priorities, got, tt.want)
		}
	}
}

func TestBuildActionRule(t *testing.T) {
	a, err := parseActionSpec("version=v1(1->delay=7)")
	if err != nil {
		t.Fatal(err)
	}
	got := buildActionRule("ratings", "reviews:version=v2", map[string]string{"Cookie": ".*?user=jason"}, 10, []api.Action{a})
	want := `{"priority":10,"destination":"ratings","match":{"source":{"name":"reviews","tags":["version=v2"]},"headers":{"Cookie":".*?user=jason"}},` +
		`"actions":[{"action":"delay","duration":7,"probability":1,"tags":["version=v1"]}]}`
	if g := jsonOf(t, got); g != want {
		t.Errorf("got %s\nwant %s", g, want)
	}
	noSource := buildActionRule("ratings", "", map[string]string{"Foo": "bar"}, 20, []api.Action{a})
	if noSource.Match.Source != nil || noSource.Match.Headers["Foo"] != "bar" {
		t.Errorf("without source: %+v", noSource.Match)
	}
}

func TestActionEntriesAndRows(t *testing.T) {
	byDest := map[string][]api.Rule{
		"ratings": mustRules(t, `[
			{"id":"low","priority":10,"destination":"ratings","match":{"source":{"name":"reviews","tags":["version=v2"]},"headers":{"Cookie":".*?user=jason"}},
			 "actions":[{"action":"delay","duration":7,"probability":1,"tags":["version=v1"]}]},
			{"id":"high","priority":20,"destination":"ratings","match":{"headers":{"X-B":"2","X-A":"1"}},
			 "actions":[{"action":"trace","tags":["v1"],"log_key":"k","log_value":"v"},{"action":"abort","probability":0.5,"return_code":503,"tags":["v1"]},{"action":"delay","duration":2.5}]}]`),
		"details": mustRules(t, `[{"id":"d","priority":10,"destination":"details","match":{"source":{"name":"productpage"}},"actions":[{"action":"abort","return_code":-1,"tags":["v1"]}]}]`),
	}
	entries := actionEntries(byDest)
	var b strings.Builder
	renderTable(&b, actionHeader, actionRows(entries))
	want := `+-------------+--------------------+----------------------+----------+-----------------------------------------------+---------+
| Destination | Source             | Headers              | Priority | Actions                                       | Rule ID |
+-------------+--------------------+----------------------+----------+-----------------------------------------------+---------+
| details     | productpage        |                      | 10       | v1(1->abort=-1)                               | d       |
| ratings     |                    | X-A:1, X-B:2         | 20       | v1(trace), v1(0.5->abort=503), (1->delay=2.5) | high    |
| ratings     | reviews:version=v2 | Cookie:.*?user=jason | 10       | version=v1(1->delay=7)                        | low     |
+-------------+--------------------+----------------------+----------+-----------------------------------------------+---------+
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	wantJSON := `[{"destination":"details","source":"productpage","priority":10,"actions":["v1(1->abort=-1)"],"id":"d"},` +
		`{"destination":"ratings","headers":["X-A:1","X-B:2"],"priority":20,"actions":["v1(trace)","v1(0.5->abort=503)","(1->delay=2.5)"],"id":"high"},` +
		`{"destination":"ratings","source":"reviews:version=v2","headers":["Cookie:.*?user=jason"],"priority":10,"actions":["version=v1(1->delay=7)"],"id":"low"}]`
	if g := jsonOf(t, entries); g != wantJSON {
		t.Errorf("JSON\n%s\nwant\n%s", g, wantJSON)
	}
}
