package cli

import (
	"strings"
	"testing"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/rules"
)

func TestRenderTable(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		rows   [][]string
		want   string
	}{
		{
			name:   "rows",
			header: []string{"Service", "Default Version", "Version Selectors"},
			rows:   [][]string{{"reviews", "v1", "v2(weight=0.25)"}, {"ratings", "", ""}},
			want: `+---------+-----------------+-------------------+
| Service | Default Version | Version Selectors |
+---------+-----------------+-------------------+
| reviews | v1              | v2(weight=0.25)   |
| ratings |                 |                   |
+---------+-----------------+-------------------+
`,
		},
		{
			name:   "no rows",
			header: []string{"Service", "Instances"},
			want: `+---------+-----------+
| Service | Instances |
+---------+-----------+
`,
		},
		{
			name:   "wide cells and short rows",
			header: []string{"A", "B"},
			rows:   [][]string{{"héllo wörld"}, {"x", "a much longer cell"}},
			want: `+-------------+--------------------+
| A           | B                  |
+-------------+--------------------+
| héllo wörld |                    |
| x           | a much longer cell |
+-------------+--------------------+
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			renderTable(&b, tt.header, tt.rows)
			if b.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}

func TestWriteYAMLKeepsJSONKeysAndReadsBack(t *testing.T) {
	w, p, code := 0.25, 0.5, 503
	in := struct {
		Rules []api.Rule `json:"rules"`
	}{[]api.Rule{
		{ID: "123", Priority: 2, Destination: "reviews",
			Match: &api.Match{Headers: map[string]string{"Cookie": "^(.*?;)?(user=jason)(;.*)?$"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, Weight: &w}, {Tags: []string{"version=v1"}}}}},
		{ID: "true", Destination: "ratings", Actions: []api.Action{{Action: "abort", Probability: &p, ReturnCode: &code, Tags: []string{"yes"}}}},
	}}
	var b strings.Builder
	if err := writeYAML(&b, in); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	want := `rules:
  - id: "123"
    priority: 2
    destination: reviews
    match:
      headers:
        Cookie: ^(.*?;)?(user=jason)(;.*)?$
    route:
      backends:
        - tags:
            - version=v2
          weight: 0.25
        - tags:
            - version=v1
  - id: "true"
    destination: ratings
    actions:
      - action: abort
        probability: 0.5
        tags:
          - "yes"
        return_code: 503
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	back, err := rules.ParseFile([]byte(got))
	if err != nil {
		t.Fatalf("rule-get's YAML does not read back: %v", err)
	}
	if back[0].ID != "123" || back[1].ID != "true" || *back[0].Route.Backends[0].Weight != 0.25 || back[1].Actions[0].Tags[0] != "yes" {
		t.Errorf("read back %+v", back)
	}
}

func TestWriteJSONDoesNotEscapeHTML(t *testing.T) {
	var b strings.Builder
	if err := writeJSON(&b, map[string]string{"Foo": "<a&b>"}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"Foo\": \"<a&b>\"\n}\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
