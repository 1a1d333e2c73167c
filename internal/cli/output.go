package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/a8fabric/a8/internal/texttable"
)

// Output formats.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// renderTable writes an ASCII table as Amalgam8's a8ctl printed them (see texttable).
func renderTable(w io.Writer, header []string, rows [][]string) {
	io.WriteString(w, texttable.Render(header, rows))
}

// writeJSON writes v as indented JSON, without HTML escaping (a header pattern keeps its & and <).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeYAML writes v as YAML with the keys and their order of its JSON form (the wire types have
// JSON tags only), so that rule-get -o yaml reads back with rule-create -f.
func writeYAML(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(buf.Bytes(), &doc); err != nil {
		return fmt.Errorf("converting to YAML: %w", err)
	}
	blockStyle(&doc)
	ye := yaml.NewEncoder(w)
	ye.SetIndent(2)
	if err := ye.Encode(&doc); err != nil {
		return err
	}
	return ye.Close()
}

// blockStyle clears the flow and quoting styles that parsing JSON gave the nodes; the encoder then
// writes block YAML and quotes only the strings that need it, and the strings that YAML 1.1
// readers (PyYAML, Amalgam8's yaml.v2) would take for booleans.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && yaml11Bools[strings.ToLower(n.Value)] {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

var yaml11Bools = map[string]bool{"y": true, "yes": true, "n": true, "no": true, "on": true, "off": true}

// writeStructured writes v as JSON or YAML.
func writeStructured(w io.Writer, format string, v any) error {
	if format == formatJSON {
		return writeJSON(w, v)
	}
	return writeYAML(w, v)
}
