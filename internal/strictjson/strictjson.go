// Package strictjson decodes JSON into Go structs strictly, with errors that say where: an unknown
// field, a value of the wrong type or a fractional number for an integer is reported with its full
// path (rules[2].route.backends[1].weight), which encoding/json cannot do. The struct's json tags are
// the schema.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Error is a decoding error at Path ("" for the whole document).
type Error struct {
	Path   string
	Reason string
	// Syntax is set when the document is not JSON at all; Unknown when it names a field the schema
	// does not have. Otherwise a value has the wrong type.
	Syntax, Unknown bool
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// Unmarshal decodes data into v (a pointer), refusing unknown fields and wrongly typed values.
// path prefixes every error path, e.g. "rules[3]". Trailing data after the value is an error.
func Unmarshal(data []byte, v any, path string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		var syn *json.SyntaxError
		switch {
		case errors.As(err, &syn):
			return &Error{Path: path, Reason: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, err), Syntax: true}
		case errors.Is(err, io.EOF):
			return &Error{Path: path, Reason: "empty document: expected a JSON value", Syntax: true}
		case errors.Is(err, io.ErrUnexpectedEOF):
			return &Error{Path: path, Reason: "malformed JSON: the document ends before its value does", Syntax: true}
		}
		return &Error{Path: path, Reason: "malformed JSON: " + err.Error(), Syntax: true}
	}
	if dec.More() {
		return &Error{Path: path, Reason: fmt.Sprintf("malformed JSON: unexpected data after the value at byte %d", dec.InputOffset()), Syntax: true}
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("strictjson: Unmarshal needs a non-nil pointer, got %T", v)
	}
	if err := Check(doc, rv.Type().Elem(), path); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return &Error{Path: path, Reason: err.Error()} // only overflow can get here
	}
	return nil
}

// Check verifies that doc, a value decoded by encoding/json with UseNumber, fits type t.
func Check(doc any, t reflect.Type, path string) error {
	if doc == nil {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			return nil
		}
		return &Error{Path: path, Reason: "must not be null: expected " + describe(t)}
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // a type that decodes itself (json.RawMessage, ...) accepts what it accepts
	}
	switch t.Kind() {
	case reflect.Pointer:
		return Check(doc, t.Elem(), path)
	case reflect.Interface:
		return nil
	case reflect.Struct:
		obj, ok := doc.(map[string]any)
		if !ok {
			return mismatch(path, t, doc)
		}
		fields := structFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys) // report the same error for the same document
		for _, k := range keys {
			f, ok := fields[k]
			if !ok {
				known := make([]string, 0, len(fields))
				for name := range fields {
					known = append(known, name)
				}
				slices.Sort(known)
				return &Error{Path: join(path, k), Reason: "unknown field; known fields here: " + strings.Join(known, ", "), Unknown: true}
			}
			if err := Check(obj[k], f, join(path, k)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		obj, ok := doc.(map[string]any)
		if !ok || t.Key().Kind() != reflect.String {
			return mismatch(path, t, doc)
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := Check(obj[k], t.Elem(), join(path, k)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		arr, ok := doc.([]any)
		if !ok {
			return mismatch(path, t, doc)
		}
		for i, e := range arr {
			if err := Check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.String:
		if _, ok := doc.(string); !ok {
			return mismatch(path, t, doc)
		}
		return nil
	case reflect.Bool:
		if _, ok := doc.(bool); !ok {
			return mismatch(path, t, doc)
		}
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := doc.(json.Number)
		if !ok {
			return mismatch(path, t, doc)
		}
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			return &Error{Path: path, Reason: fmt.Sprintf("expected an integer, got %s", n)}
		}
		return nil
	case reflect.Float32, reflect.Float64:
		if _, ok := doc.(json.Number); !ok {
			return mismatch(path, t, doc)
		}
		return nil
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// JoinPath joins two parts of a field path: "rules[0]" and "id" make "rules[0].id", "rules" and
// "[0]" make "rules[0]"; an empty part is left out.
func JoinPath(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structFields maps the JSON names of t's fields (embedded structs flattened) to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range structFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func mismatch(path string, t reflect.Type, doc any) error {
	return &Error{Path: path, Reason: fmt.Sprintf("expected %s, got %s", describe(t), kindOf(doc))}
}

func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return describe(t.Elem())
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	}
	return t.String()
}

func kindOf(doc any) string {
	switch v := doc.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return fmt.Sprintf("the string %q", truncate(v))
	case bool:
		return fmt.Sprintf("%t", v)
	case json.Number:
		return "the number " + string(v)
	}
	return fmt.Sprintf("%T", doc)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
