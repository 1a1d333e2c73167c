package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/strictjson"
)

// ParseFile reads a rule file, as a8ctl's -f takes it: {"rules": [...]} in JSON or YAML (the same
// keys). Unknown fields and wrongly typed values are errors with their path; the rules are not
// validated (the controller does that, and says more). A JSON object with a repeated key is an
// error, and so are several YAML documents unless each is a rule file (see ToJSON).
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
//
// Nothing is dropped silently. JSON with a key repeated in an object is an error naming the key
// (a JSON decoder keeps one of the values). Several YAML documents (separated by ---) are one
// rule file when each is a rule file, {rules: [...]}: their rules, in order, make one list (the
// rules[i] of errors count across the documents); otherwise they are an error. (YAML refuses a
// repeated key itself.)
func ToJSON(data []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(trimmed) {
		if err := checkRepeatedKeys(trimmed); err != nil {
			return nil, err
		}
		return trimmed, nil
	}
	docs, err := yamlDocuments(data)
	if err != nil {
		return nil, fmt.Errorf("neither valid JSON nor valid YAML: %w", err)
	}
	var doc any
	switch len(docs) {
	case 0:
	case 1:
		doc = docs[0]
	default:
		if doc, err = joinRuleFiles(docs); err != nil {
			return nil, err
		}
	}
	doc, err = jsonable(doc, "")
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// yamlDocuments decodes every YAML document of data, leaving out empty ones (a trailing ---, a
// document of comments). An error in a document after the first names it.
func yamlDocuments(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for n := 1; ; n++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			if n > 1 {
				return nil, fmt.Errorf("YAML document %d: %w", n, err)
			}
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// joinRuleFiles joins YAML documents that are each a rule file, {rules: [...]}, into one.
func joinRuleFiles(docs []any) (any, error) {
	var all []any
	for i, d := range docs {
		m, ok := d.(map[string]any)
		rs, isList := m["rules"].([]any)
		if !ok || len(m) != 1 || (!isList && m["rules"] != nil) {
			return nil, fmt.Errorf("the file holds %d YAML documents (separated by ---), and document %d is not a rule file, {rules: [...]}: "+
				"several documents are read only when each is one; otherwise put every rule in one rules list", len(docs), i+1)
		}
		all = append(all, rs...)
	}
	if all == nil {
		all = []any{}
	}
	return map[string]any{"rules": all}, nil
}

// checkRepeatedKeys refuses a JSON document with a key given twice in one object, naming the key
// and where.
func checkRepeatedKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return checkRepeatedIn(dec, "")
}

func checkRepeatedIn(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			child := k
			if path != "" {
				child = path + "." + k
			}
			if seen[k] {
				where := ""
				if path != "" {
					where = path + ": "
				}
				return fmt.Errorf("%skey %q is given twice (JSON would keep only one of its values): give it once", where, k)
			}
			seen[k] = true
			if err := checkRepeatedIn(dec, child); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := checkRepeatedIn(dec, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	_, err = dec.Token() // the closing delimiter
	return err
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
