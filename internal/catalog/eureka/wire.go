package eureka

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The JSON of a Eureka server's GET apps and apps/delta, decoded liberally: servers and the
// clients that registered with them differ (reference: shared/reference/eureka.md). A port may be
// {"$": 8080, "@enabled": "true"}, {"$": "8080", "@enabled": true} or a bare number; "application"
// and "instance" may be an object or an array; counters may be strings or numbers.

type applicationsDoc struct {
	Applications *applications `json:"applications"`
}

type applications struct {
	VersionsDelta flexString             `json:"versions__delta"`
	AppsHashcode  flexString             `json:"apps__hashcode"`
	Application   oneOrMany[application] `json:"application"`
}

type application struct {
	Name     string              `json:"name"`
	Instance oneOrMany[instance] `json:"instance"`
}

type instance struct {
	InstanceID     string         `json:"instanceId"`
	HostName       string         `json:"hostName"`
	App            string         `json:"app"`
	IPAddr         string         `json:"ipAddr"`
	Status         string         `json:"status"`
	Port           port           `json:"port"`
	SecurePort     port           `json:"securePort"`
	VIPAddress     string         `json:"vipAddress"`
	Metadata       map[string]any `json:"metadata"`
	DataCenterInfo struct {
		Metadata map[string]any `json:"metadata"`
	} `json:"dataCenterInfo"`
	ActionType string `json:"actionType"`
}

// oneOrMany decodes a JSON array, a single object, or null.
type oneOrMany[T any] []T

func (o *oneOrMany[T]) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		*o = nil
		return nil
	case len(data) > 0 && data[0] == '[':
		var list []T
		if err := json.Unmarshal(data, &list); err != nil {
			return err
		}
		*o = list
		return nil
	}
	var one T
	if err := json.Unmarshal(data, &one); err != nil {
		return err
	}
	*o = []T{one}
	return nil
}

// flexString decodes a string or a number as its text.
type flexString string

func (f *flexString) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("want a string or a number, got %s", data)
	}
	*f = flexString(n.String())
	return nil
}

// port is a Eureka port: its number and its "@enabled" flag. Eureka's rule: a port is enabled
// unless the flag says "false"; a secure port only if it says "true".
type port struct {
	Number   int
	Enabled  bool // the flag is "true"
	Explicit bool // the flag is present
}

func (p port) enabled() bool       { return p.Number > 0 && (!p.Explicit || p.Enabled) }
func (p port) secureEnabled() bool { return p.Number > 0 && p.Explicit && p.Enabled }

func (p *port) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	if len(data) > 0 && data[0] != '{' { // a bare number (or numeric string)
		n, err := portNumber(data)
		p.Number = n
		return err
	}
	var obj struct {
		Value   json.RawMessage `json:"$"`
		Enabled json.RawMessage `json:"@enabled"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	if len(obj.Value) > 0 {
		n, err := portNumber(obj.Value)
		if err != nil {
			return err
		}
		p.Number = n
	}
	if len(obj.Enabled) > 0 && string(obj.Enabled) != "null" {
		p.Explicit = true
		p.Enabled = strings.EqualFold(strings.Trim(string(obj.Enabled), `"`), "true")
	}
	return nil
}

func portNumber(data []byte) (int, error) {
	n, err := strconv.Atoi(strings.Trim(string(data), `"`))
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("port %s is not a port number", data)
	}
	return n, nil
}
