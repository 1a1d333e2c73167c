package rules

import (
	"strings"
	"testing"
)

// TestParseFile_NothingDropped checks that no rule of a file is lost silently: several YAML
// documents are joined when each is a rule file and refused otherwise, and a JSON key given twice
// is refused.
func TestParseFile_NothingDropped(t *testing.T) {
	const (
		ruleA = "- id: a\n  destination: x\n  route:\n    backends:\n    - tags: [v1]\n"
		ruleB = "- id: b\n  destination: y\n  route:\n    backends:\n    - tags: [v2]\n"
	)
	tests := []struct {
		name    string
		in      string
		ids     string // the ids read, comma-separated
		wantErr string
	}{
		{name: "one document", in: "rules:\n" + ruleA, ids: "a"},
		{name: "one document after ---", in: "---\nrules:\n" + ruleA, ids: "a"},
		{name: "trailing ---", in: "rules:\n" + ruleA + "---\n", ids: "a"},
		{name: "two rule files joined", in: "rules:\n" + ruleA + "---\nrules:\n" + ruleB, ids: "a,b"},
		{name: "three, one of comments and one empty", in: "rules:\n" + ruleA + "---\n# nothing\n---\nrules:\n" + ruleB + "---\nrules: []\n", ids: "a,b"},
		{name: "a document that is not a rule file", in: "rules:\n" + ruleA + "---\nid: b\ndestination: y\n",
			wantErr: "the file holds 2 YAML documents (separated by ---), and document 2 is not a rule file, {rules: [...]}"},
		{name: "a rule file with another key", in: "rules:\n" + ruleA + "---\nrules: []\nother: 1\n", wantErr: "document 2 is not a rule file"},
		{name: "rules not a list", in: "rules:\n" + ruleA + "---\nrules: 3\n", wantErr: "document 2 is not a rule file"},
		{name: "a bad later document", in: "rules:\n" + ruleA + "---\nrules: [\n", wantErr: "neither valid JSON nor valid YAML: YAML document 2: "},
		{name: "YAML repeated key", in: "rules:\n- id: a\n  destination: x\n  destination: y\n", wantErr: `mapping key "destination" already defined`},
		{name: "JSON repeated key in a rule", in: `{"rules": [{"id": "a", "destination": "x", "route": {"backends": [{"tags": ["v1"]}]}, "destination": "y"}]}`,
			wantErr: `rules[0]: key "destination" is given twice (JSON would keep only one of its values): give it once`},
		{name: "JSON repeated rules", in: `{"rules": [{"id": "a", "destination": "x"}], "rules": [{"id": "b", "destination": "y"}]}`,
			wantErr: `key "rules" is given twice`},
		{name: "JSON repeated key deep", in: `{"rules": [{"id": "a", "destination": "x"}, {"id": "b", "destination": "y", "match": {"headers": {"Foo": "1", "Foo": "2"}}}]}`,
			wantErr: `rules[1].match.headers: key "Foo" is given twice`},
		{name: "JSON same key in different objects", in: `{"rules": [{"id": "a", "destination": "x", "route": {"backends": [{"tags": ["v1"]}, {"tags": ["v2"], "weight": 0.5}]}}]}`, ids: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ParseFile([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q (rules %+v)", err, tt.wantErr, rs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			if got := strings.Join(ids, ","); got != tt.ids {
				t.Errorf("ids %s, want %s", got, tt.ids)
			}
		})
	}
}

// TestToJSON_Documents checks ToJSON itself, which a8ctl and the sidecar's static file use.
func TestToJSON_Documents(t *testing.T) {
	js, err := ToJSON([]byte("rules: [{id: a}]\n---\nrules: [{id: b}]\n"))
	if err != nil || string(js) != `{"rules":[{"id":"a"},{"id":"b"}]}` {
		t.Errorf("joined: %s %v", js, err)
	}
	if _, err := ToJSON([]byte("instances: []\nrules: []\n---\nrules: []\n")); err == nil || !strings.Contains(err.Error(), "document 1 is not a rule file") {
		t.Errorf("a static file of two documents: %v", err)
	}
	if js, err := ToJSON([]byte("")); err != nil || string(js) != "null" {
		t.Errorf("empty: %s %v", js, err)
	}
}
