package rules

import (
	"bytes"
	"encoding/json"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/strictjson"
)

// ParseFile reads a rule file, as a8ctl's -f takes it: {"rules": [...]} in JSON or YAML (the same
// keys). Unknown fields and wrongly typed values are errors with their path; the rules are not
// validated (the controller does that, and says more).
func ParseFile(data []byte) ([]api.Rule, error) {
	data, err := ToJSON(data)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Rules []api.Rule `json:"rules"`
	}
	if err := strictjson.Unmarshal(data, &doc, ""); err != nil {
		return nil, err
	}
	if doc.Rules == nil {
		return nil, fmt.Errorf("rules: required: the file holds {\"rules\": [...]}")
	}
	return doc.Rules, nil
}

// ToJSON returns data as JSON: JSON as it is, YAML converted (YAML is a superset of JSON, but JSON
// parsed as JSON gives better error positions).
func ToJSON(data []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(trimmed) {
		return trimmed, nil
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("neither valid JSON nor valid YAML: %w", err)
	}
	doc, err := jsonable(doc, "")
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// jsonable turns YAML's decoded values into ones encoding/json can write: map keys must be strings.
func jsonable(v any, path string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := jsonable(e, path+"."+k)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: map key %v is not a string", path, k)
			}
			c, err := jsonable(e, path+"."+ks)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		for i, e := range t {
			c, err := jsonable(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	}
	return v, nil
}
