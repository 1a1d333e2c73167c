package strictjson

import (
	"encoding/json"
	"strings"
	"testing"
)

type backend struct {
	Name   string   `json:"name,omitempty"`
	Tags   []string `json:"tags"`
	Weight *float64 `json:"weight,omitempty"`
}

type rule struct {
	ID       string            `json:"id,omitempty"`
	Priority int               `json:"priority,omitempty"`
	Backends []backend         `json:"backends"`
	Headers  map[string]string `json:"headers,omitempty"`
	Meta     json.RawMessage   `json:"meta,omitempty"`
	skip     int
}

type doc struct {
	Rules []rule `json:"rules"`
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{`{"rules":[{"id":"a","priority":3,"backends":[{"tags":["v1"],"weight":0.5}],"headers":{"Cookie":"x"},"meta":{"any":[1]}}]}`, ""},
		{`{"rules":[{"priority":3.0}]}`, "rules[0].priority: expected an integer, got 3.0"},
		{`{"rules":[{"priority":-7}]}`, ""},
		{`{"rules":[{"backends":null}]}`, ""},
		{`{"rules":[{"id":"a"},{"backends":[{"tags":["v1"]},{"tags":["v2"],"weight":"0.5"}]}]}`, `rules[1].backends[1].weight: expected a number, got the string "0.5"`},
		{`{"rules":[{"priority":1.5}]}`, `rules[0].priority: expected an integer, got 1.5`},
		{`{"rules":[{"backends":[{"tags":["v1"],"colour":"red"}]}]}`, `rules[0].backends[0].colour: unknown field; known fields here: name, tags, weight`},
		{`{"rules":[{"headers":{"Cookie":5}}]}`, `rules[0].headers.Cookie: expected a string, got the number 5`},
		{`{"rules":{"id":"a"}}`, `rules: expected an array, got an object`},
		{`{"rules":[{"id":null}]}`, `rules[0].id: must not be null: expected a string`},
		{`{"rules":[{"skip":1}]}`, `rules[0].skip: unknown field`},
		{`[]`, `expected an object, got an array`},
		{`{"rules": [`, `malformed JSON`},
		{`{"rules": []} {}`, `unexpected data after the value`},
		{``, `empty document`},
		{`{"rules":[{"id":"a",}]}`, `malformed JSON at byte`},
	}
	for _, tc := range tests {
		var d doc
		err := Unmarshal([]byte(tc.in), &d, "")
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.in, err, tc.wantErr)
		}
	}
	var d doc
	if err := Unmarshal([]byte(`{"rules":[{"backends":[{"tags":["v1"],"weight":0.25}]}]}`), &d, ""); err != nil || *d.Rules[0].Backends[0].Weight != 0.25 {
		t.Fatalf("decoded %+v, %v", d, err)
	}
	var r rule
	if err := Unmarshal([]byte(`{"priority":"x"}`), &r, "rules[4]"); err == nil || !strings.HasPrefix(err.Error(), "rules[4].priority: ") {
		t.Fatalf("path prefix: %v", err)
	}
}
