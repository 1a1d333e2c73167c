package eureka

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Reading is liberal, because Eureka clients differ: each document, JSON or XML, is first turned
// into one generic tree (JSON values; XML elements become objects whose attributes are "@name" keys
// and whose text beside attributes is "$", as Eureka's JSON spells ports and classes), and fields are
// then read from the tree accepting every spelling seen in the wild: a port as a number, a string or
// {"$": .., "@enabled": ..} with a string or a bool; an instance or application as an object or an
// array; timestamps as numbers or strings; overriddenStatus or overriddenstatus; metadata with an
// @class marker.

// DecodeError is a document that cannot be read; it is answered with 400.
type DecodeError struct{ Msg string }

func (e *DecodeError) Error() string { return e.Msg }

func decodeErr(format string, args ...any) error {
	return &DecodeError{fmt.Sprintf(format, args...)}
}

// isXML chooses the format of a body: by Content-Type when it names json or xml, else by the first
// character.
func isXML(data []byte, contentType string) bool {
	ct := strings.ToLower(contentType)
	switch {
	case strings.Contains(ct, "json"):
		return false
	case strings.Contains(ct, "xml"):
		return true
	}
	t := bytes.TrimSpace(data)
	return len(t) > 0 && t[0] == '<'
}

// parseTree decodes a JSON or XML document into a generic tree whose root is an object. An XML
// document becomes {rootElementName: element}.
func parseTree(data []byte, contentType string) (map[string]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, decodeErr("empty body: expected a JSON or XML document")
	}
	if isXML(data, contentType) {
		return parseXML(data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, decodeErr("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, decodeErr("malformed JSON: data after the document")
	}
	m, ok := root.(map[string]any)
	if !ok {
		return nil, decodeErr("malformed document: expected a JSON object")
	}
	return m, nil
}

const maxXMLDepth = 32

func parseXML(data []byte) (map[string]any, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF {
				return nil, decodeErr("malformed XML: no root element")
			}
			return nil, decodeErr("malformed XML: %v", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			v, err := xmlElement(dec, start, 0)
			if err != nil {
				return nil, err
			}
			return map[string]any{start.Name.Local: v}, nil
		}
	}
}

// xmlElement reads the rest of the element start: a leaf without attributes becomes its text, any
// other element an object of attributes ("@name"), children (repeated ones as an array) and text ("$").
func xmlElement(dec *xml.Decoder, start xml.StartElement, depth int) (any, error) {
	if depth > maxXMLDepth {
		return nil, decodeErr("malformed XML: nested deeper than %d elements", maxXMLDepth)
	}
	var children map[string]any
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, decodeErr("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			v, err := xmlElement(dec, t, depth+1)
			if err != nil {
				return nil, err
			}
			if children == nil {
				children = make(map[string]any)
			}
			name := t.Name.Local
			switch prev := children[name].(type) {
			case nil:
				children[name] = v
			case []any:
				children[name] = append(prev, v)
			default:
				children[name] = []any{prev, v}
			}
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			if children == nil && len(start.Attr) == 0 {
				return text.String(), nil
			}
			m := children
			if m == nil {
				m = make(map[string]any, len(start.Attr)+1)
			}
			for _, a := range start.Attr {
				m["@"+a.Name.Local] = a.Value
			}
			if s := strings.TrimSpace(text.String()); s != "" {
				m["$"] = s
			}
			return m, nil
		}
	}
}

// Value readers over the generic tree.

// object returns v as an object: an object itself, or the first object of an array.
func object(v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return x
	case []any:
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				return m
			}
		}
	}
	return nil
}

// objects returns v as a list of objects: an array's objects, or a lone object.
func objects(v any) []map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return []map[string]any{x}
	case []any:
		out := make([]map[string]any, 0, len(x))
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// text returns v as a string: strings, numbers and bools as written, {"$": x} as x.
func text(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case map[string]any:
		if d, ok := x["$"]; ok {
			return text(d)
		}
	case []any:
		if len(x) > 0 {
			return text(x[0])
		}
	}
	return "", false
}

// str returns the first of keys present in m, as a trimmed string.
func str(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if s, ok := text(v); ok {
				return strings.TrimSpace(s)
			}
		}
	}
	return ""
}

// integer parses a whole number written as a JSON number or a string ("8080", "8080.0").
func integer(v any) (int64, bool) {
	s, ok := text(v)
	if !ok {
		return 0, false
	}
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f), true
	}
	return 0, false
}

// num reads an optional number field; a value that is not a number reads as 0.
func num(m map[string]any, key string) int64 {
	n, _ := integer(m[key])
	return n
}

// flag reads a boolean written as a bool or a string; absent or unreadable is def.
func flag(v any, def bool) bool {
	s, ok := text(v)
	if !ok {
		return def
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// port reads a port: a bare number or string, or {"$": n, "@enabled": b}. enabledDefault applies
// when no enabled flag is given; an unreadable enabled flag counts as "not true" for a secure port
// and "not false" for the plain one, as Eureka's converters read it.
func port(m map[string]any, key string, enabledDefault bool) (n int, enabled bool, err error) {
	v, ok := m[key]
	if !ok || v == nil {
		return 0, enabledDefault, nil
	}
	enabled = enabledDefault
	if o, isObj := v.(map[string]any); isObj {
		if e, ok := o["@enabled"]; ok {
			enabled = flag(e, enabledDefault)
		} else if e, ok := o["enabled"]; ok {
			enabled = flag(e, enabledDefault)
		}
		v = o["$"]
		if v == nil {
			return 0, enabled, nil
		}
	}
	if s, ok := v.(string); ok && strings.TrimSpace(s) == "" {
		return 0, enabled, nil
	}
	p, ok := integer(v)
	if !ok || p < 0 || p > 65535 {
		s, _ := text(v)
		return 0, enabled, decodeErr("%s: %q is not a port number (0 to 65535)", key, s)
	}
	return int(p), enabled, nil
}

// stringMap reads metadata: an object of strings; other scalars are written as text, objects and
// arrays as compact JSON; the @class marker of Eureka's maps is dropped.
func stringMap(v any) map[string]string {
	o, ok := v.(map[string]any)
	if !ok || len(o) == 0 {
		return nil
	}
	out := make(map[string]string, len(o))
	for k, e := range o {
		if k == "@class" || k == "" {
			continue
		}
		switch x := e.(type) {
		case nil:
			continue
		case map[string]any:
			if d, ok := x["$"]; ok && len(x) == 1 { // an XML value element with only text
				if t, ok := text(d); ok {
					out[k] = t
					continue
				}
			}
			if b, err := json.Marshal(x); err == nil {
				out[k] = string(b)
			}
		case []any:
			if b, err := json.Marshal(x); err == nil {
				out[k] = string(b)
			}
		default:
			if t, ok := text(x); ok {
				out[k] = t
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// instanceFrom reads an instance object.
func instanceFrom(m map[string]any) (*Instance, error) {
	in := &Instance{
		InstanceID:   str(m, "instanceId"),
		App:          strings.ToUpper(str(m, "app")),
		AppGroupName: str(m, "appGroupName"),
		HostName:     str(m, "hostName"),
		IPAddr:       str(m, "ipAddr"),
		CountryID:    int(num(m, "countryId")),
		Metadata:     stringMap(m["metadata"]),

		HomePageURL:          str(m, "homePageUrl"),
		StatusPageURL:        str(m, "statusPageUrl"),
		HealthCheckURL:       str(m, "healthCheckUrl"),
		SecureHealthCheckURL: str(m, "secureHealthCheckUrl"),
		VIPAddress:           str(m, "vipAddress"),
		SecureVIPAddress:     str(m, "secureVipAddress"),

		IsCoordinatingDiscoveryServer: flag(m["isCoordinatingDiscoveryServer"], false),
		LastUpdatedTimestamp:          num(m, "lastUpdatedTimestamp"),
		LastDirtyTimestamp:            num(m, "lastDirtyTimestamp"),
		ASGName:                       str(m, "asgName"),
		ActionType:                    strings.ToUpper(str(m, "actionType")),
	}
	in.Status = StatusUp
	if s := str(m, "status"); s != "" {
		in.Status, _ = ParseStatus(s)
	}
	in.OverriddenStatus = StatusUnknown
	if s := str(m, "overriddenStatus", "overriddenstatus"); s != "" {
		in.OverriddenStatus, _ = ParseStatus(s)
	}
	var err error
	if in.Port, in.PortEnabled, err = port(m, "port", true); err != nil {
		return nil, err
	}
	if in.SecurePort, in.SecurePortEnabled, err = port(m, "securePort", false); err != nil {
		return nil, err
	}
	if dc := object(m["dataCenterInfo"]); dc != nil {
		in.DataCenterInfo = DataCenterInfo{
			Class:    str(dc, "@class", "class"),
			Name:     str(dc, "name"),
			Metadata: stringMap(dc["metadata"]),
		}
	}
	if li := object(m["leaseInfo"]); li != nil {
		in.LeaseInfo = LeaseInfo{
			RenewalIntervalInSecs: int(num(li, "renewalIntervalInSecs")),
			DurationInSecs:        int(num(li, "durationInSecs")),
			RegistrationTimestamp: num(li, "registrationTimestamp"),
			LastRenewalTimestamp:  num(li, "lastRenewalTimestamp"),
			EvictionTimestamp:     num(li, "evictionTimestamp"),
			ServiceUpTimestamp:    num(li, "serviceUpTimestamp"),
		}
	}
	if in.InstanceID == "" { // InstanceInfo.getId(): the AWS instance-id, then the host name
		if in.DataCenterInfo.isAmazon() {
			in.InstanceID = strings.TrimSpace(in.DataCenterInfo.Metadata["instance-id"])
		}
		if in.InstanceID == "" {
			in.InstanceID = in.HostName
		}
	}
	return in, nil
}

// DecodeInstance reads an instance document, {"instance": {...}} or <instance>...</instance> (a
// bare JSON instance object is accepted too). contentType chooses the format when it names json or
// xml; otherwise the first character does.
func DecodeInstance(data []byte, contentType string) (*Instance, error) {
	root, err := parseTree(data, contentType)
	if err != nil {
		return nil, err
	}
	m := object(root["instance"])
	if m == nil {
		if _, ok := root["instance"]; ok || (root["app"] == nil && root["hostName"] == nil) {
			return nil, decodeErr(`no instance: expected {"instance": {...}} or <instance>...</instance>`)
		}
		m = root
	}
	return instanceFrom(m)
}

func applicationFrom(m map[string]any) (*Application, error) {
	app := &Application{Name: strings.ToUpper(str(m, "name"))}
	for _, im := range objects(m["instance"]) {
		in, err := instanceFrom(im)
		if err != nil {
			return nil, err
		}
		if in.App == "" {
			in.App = app.Name
		}
		app.Instances = append(app.Instances, in)
	}
	return app, nil
}

// DecodeApplication reads an application document, {"application": {...}} or <application>.
func DecodeApplication(data []byte, contentType string) (*Application, error) {
	root, err := parseTree(data, contentType)
	if err != nil {
		return nil, err
	}
	m := object(root["application"])
	if m == nil {
		return nil, decodeErr(`no application: expected {"application": {...}} or <application>...</application>`)
	}
	return applicationFrom(m)
}

// DecodeApplications reads a registry document, {"applications": {...}} or <applications>.
func DecodeApplications(data []byte, contentType string) (*Applications, error) {
	root, err := parseTree(data, contentType)
	if err != nil {
		return nil, err
	}
	raw, ok := root["applications"]
	if !ok {
		return nil, decodeErr(`no applications: expected {"applications": {...}} or <applications>...</applications>`)
	}
	out := &Applications{}
	m := object(raw)
	if m == nil {
		if s, ok := raw.(string); ok && strings.TrimSpace(s) == "" { // <applications/>
			return out, nil
		}
		return nil, decodeErr("applications: expected an object")
	}
	out.VersionsDelta = num(m, "versions__delta")
	out.AppsHashcode = str(m, "apps__hashcode")
	for _, am := range objects(m["application"]) {
		app, err := applicationFrom(am)
		if err != nil {
			return nil, err
		}
		out.Applications = append(out.Applications, app)
	}
	return out, nil
}
