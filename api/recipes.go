package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a8fabric/a8/internal/strictjson"
)

// This file holds the wire types of Gremlin-style resilience testing, in the JSON Amalgam8's
// Gremlin service (a8ctl recipe-run) used: a recipe is a topology, scenarios (gremlins: faults to
// inject) and the header that marks test requests; the controller turns it into action rules, the
// sidecars record the traced requests, and a checklist of assertions is evaluated on the records.

// Gremlin scenarios.
const (
	ScenarioDelayRequests     = "delay_requests"
	ScenarioDelayResponses    = "delay_responses"
	ScenarioAbortRequests     = "abort_requests"
	ScenarioAbortResponses    = "abort_responses"
	ScenarioPartitionServices = "partition_services"
	ScenarioCrashService      = "crash_service"
	ScenarioOverloadService   = "overload_service"
)

// Check (assertion) names.
const (
	CheckBoundedResponseTime = "bounded_response_time"
	CheckHTTPStatus          = "http_status"
	CheckHTTPSuccessStatus   = "http_success_status"
	CheckAtMostRequests      = "at_most_requests"
	CheckNumRequests         = "num_requests"
	CheckBoundedRetries      = "bounded_retries"
	CheckCircuitBreaker      = "circuit_breaker"
	CheckBulkhead            = "bulkhead"
	CheckNoProxyErrors       = "no_proxy_errors"
)

// Recipe defaults and the trace key of recipe rules.
const (
	// DefaultRecipeHeader is the header that marks test requests when a recipe names none.
	DefaultRecipeHeader = "X-Request-ID"
	// DefaultRecipeHeaderPattern is the header pattern when a recipe gives none: any value.
	DefaultRecipeHeaderPattern = "*"
	// RecipeTraceKey is the log_key of a recipe's trace actions; the log_value is the recipe id.
	RecipeTraceKey = "gremlin_recipe_id"
)

// Topology is the application graph of a recipe: its services and who calls whom. A service is
// named "name" or "name:tag1,tag2" (e.g. "reviews:version=v2", "gateway:version=none").
type Topology struct {
	Services []TopologyService `json:"services"`
	// Dependencies maps a service to the services it calls, both as named in Services.
	Dependencies map[string][]string `json:"dependencies,omitempty"`
}

// TopologyService is one service of a Topology.
type TopologyService struct {
	Name string `json:"name"`
	// ServiceProxies are Gremlin's proxy addresses; accepted and ignored (the sidecars act).
	ServiceProxies []string `json:"service_proxies,omitempty"`
}

// Scenarios is the list of faults a recipe injects.
type Scenarios struct {
	Gremlins []Gremlin `json:"gremlins"`
}

// Gremlin is one fault scenario. Which fields apply depends on Scenario:
//
//   - delay_requests, delay_responses: Source and/or Dest, DelayTime (default "1s"),
//     DelayProbability (default 1).
//   - abort_requests, abort_responses: Source and/or Dest, ErrorCode (default -1: reset the
//     connection), AbortProbability (default 1).
//   - partition_services: Source and Dest, SrcProbability and DstProbability (default 1), ErrorCode
//     (default 0: reset).
//   - crash_service: Dest, ErrorCode (default 0: reset), AbortProbability (default 1).
//   - overload_service: Dest, optionally Source; DelayTime "10s" at DelayProbability 0.5 and then
//     ErrorCode 503 at AbortProbability 0.5.
//
// The raw fields are ones Amalgam8 accepted and ignored; they are accepted, kept and ignored.
type Gremlin struct {
	Scenario string `json:"scenario"`
	Source   string `json:"source,omitempty"`
	Dest     string `json:"dest,omitempty"`
	// DelayTime is a Go duration string such as "7s" or "1s500ms".
	DelayTime        string   `json:"delaytime,omitempty"`
	DelayProbability *float64 `json:"delayprobability,omitempty"`
	// ErrorCode is the HTTP status of an abort; below 100 (-1, 0) the connection is reset instead.
	ErrorCode        *int     `json:"errorcode,omitempty"`
	AbortProbability *float64 `json:"abortprobability,omitempty"`
	SrcProbability   *float64 `json:"srcprobability,omitempty"`
	DstProbability   *float64 `json:"dstprobability,omitempty"`

	MessageType        json.RawMessage `json:"messagetype,omitempty"`
	TrackingHeader     json.RawMessage `json:"trackingheader,omitempty"`
	BodyPattern        json.RawMessage `json:"bodypattern,omitempty"`
	HeaderPattern      json.RawMessage `json:"headerpattern,omitempty"`
	DelayDistribution  json.RawMessage `json:"delaydistribution,omitempty"`
	AbortDistribution  json.RawMessage `json:"abortdistribution,omitempty"`
	MangleProbability  json.RawMessage `json:"mangleprobability,omitempty"`
	MangleDistribution json.RawMessage `json:"mangledistribution,omitempty"`
	SearchString       json.RawMessage `json:"searchstring,omitempty"`
	ReplaceString      json.RawMessage `json:"replacestring,omitempty"`
}

// RecipeRequest is the body of POST /api/v1/recipes, as a8ctl recipe-run sends it.
type RecipeRequest struct {
	Topology  Topology  `json:"topology"`
	Scenarios Scenarios `json:"scenarios"`
	// Header marks test requests; "" means DefaultRecipeHeader (Amalgam8's Go a8ctl sends "" when
	// -H is not given).
	Header string `json:"header,omitempty"`
	// HeaderPattern is a regular expression searched for in the header's value; "*" (and "")
	// means any value.
	HeaderPattern string `json:"header_pattern,omitempty"`
}

// WithDefaults returns r with Header and HeaderPattern set to their defaults when empty.
func (r RecipeRequest) WithDefaults() RecipeRequest {
	if r.Header == "" {
		r.Header = DefaultRecipeHeader
	}
	if r.HeaderPattern == "" {
		r.HeaderPattern = DefaultRecipeHeaderPattern
	}
	return r
}

// RecipeCreated is the 201 body of POST /api/v1/recipes.
type RecipeCreated struct {
	RecipeID string `json:"recipe_id"`
}

// Recipe is a recipe the controller runs: GET /api/v1/recipes/{id}.
type Recipe struct {
	ID            string    `json:"id"`
	Created       time.Time `json:"created"`
	RuleIDs       []string  `json:"rule_ids"`
	Topology      Topology  `json:"topology"`
	Scenarios     Scenarios `json:"scenarios"`
	Header        string    `json:"header"`
	HeaderPattern string    `json:"header_pattern"`
}

// RecipeList is the body of GET /api/v1/recipes.
type RecipeList struct {
	Recipes []Recipe `json:"recipes"`
}

// Checklist is a recipe's assertions, as a8ctl recipe-run's checks file holds them.
type Checklist struct {
	// LogServer is Amalgam8's Elasticsearch address; accepted and ignored.
	LogServer string  `json:"log_server,omitempty"`
	Checks    []Check `json:"checks"`
}

// ChecksRequest is the body of POST /api/v1/recipes/{id}: the checks to run on the recipe's records.
type ChecksRequest struct {
	Checklist Checklist `json:"checklist"`
	// Wait is the most time to wait for the records of requests still in flight, a Go duration
	// string such as "30s" ("": the server's default). Decoding checks that it parses and is not
	// negative.
	Wait string `json:"wait,omitempty"`
}

// CheckResults is the answer of POST /api/v1/recipes/{id}: one result per check, in order.
type CheckResults struct {
	Results []CheckResult `json:"results"`
}

// SplitService splits a service as records and topologies name it, "name" or "name:tag1,tag2", at
// the first colon; empty tags are dropped.
func SplitService(s string) (name string, tags []string) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok {
		return name, nil
	}
	for t := range strings.SplitSeq(rest, ",") {
		if t != "" {
			tags = append(tags, t)
		}
	}
	return name, tags
}

// CheckService reports what is wrong with a service as a check, topology or gremlin names it:
// "name" or "name:tag1,tag2" with a non-empty name and tags, without spaces; nil if nothing.
func CheckService(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty: give a service, such as \"reviews\" or \"reviews:version=v2\"")
	}
	if strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return fmt.Errorf("%q contains spaces or control characters", s)
	}
	name, rest, ok := strings.Cut(s, ":")
	if name == "" {
		return fmt.Errorf("%q has no service name before the colon", s)
	}
	if ok {
		tags := strings.Split(rest, ",")
		for i, t := range tags {
			switch {
			case t == "":
				return fmt.Errorf("%q has an empty tag: write \"name\" or \"name:tag1,tag2\"", s)
			case slices.Index(tags, t) < i:
				return fmt.Errorf("%q lists tag %q twice", s, t)
			}
		}
	}
	return nil
}

// Duration is a time in a check (max_latency, wait_time, reset_time, errdelta) or a request: a Go
// duration string ("7s", "1s500ms", "250ms") or a JSON number of seconds. It marshals exactly as it
// was given, so that results echo their check unchanged; one made by NewDuration marshals as a Go
// duration string.
type Duration struct {
	d   time.Duration
	raw json.RawMessage
}

// NewDuration returns d as a Duration.
func NewDuration(d time.Duration) Duration { return Duration{d: d} }

// Duration returns the time.
func (d Duration) Duration() time.Duration { return d.d }

// String returns the time as Go writes durations ("7s").
func (d Duration) String() string { return d.d.String() }

// MarshalJSON writes the duration as it was given, or as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	if len(d.raw) > 0 {
		return d.raw, nil
	}
	return json.Marshal(d.d.String())
}

// UnmarshalJSON reads a Go duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	switch t := v.(type) {
	case string:
		pd, err := time.ParseDuration(t)
		if err != nil {
			return fmt.Errorf("%q is not a duration: give a Go duration such as \"7s\", \"1s500ms\" or \"250ms\", or a number of seconds", t)
		}
		d.d = pd
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64)/float64(time.Second) {
			return fmt.Errorf("%s seconds is not a duration this side of 290 years", t)
		}
		d.d = time.Duration(math.Round(f * float64(time.Second)))
	default:
		return fmt.Errorf("expected a duration such as \"7s\" or a number of seconds, got %s", describeJSON(v))
	}
	d.raw = append(json.RawMessage(nil), b...)
	return nil
}

// Status is the expected status of an http_status check: one code, or a list of them. It marshals
// in the form it was given.
type Status struct {
	Codes []int
	// List says that the codes are written as a list, even a list of one.
	List bool
}

// StatusCodes returns codes as a Status: a single code written as a number, several as a list.
func StatusCodes(codes ...int) Status {
	return Status{Codes: codes, List: len(codes) != 1}
}

// MarshalJSON writes a number or a list.
func (s Status) MarshalJSON() ([]byte, error) {
	if !s.List && len(s.Codes) == 1 {
		return json.Marshal(s.Codes[0])
	}
	if s.Codes == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(s.Codes)
}

// UnmarshalJSON reads an integer or a list of integers.
func (s *Status) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var codes []int
		if err := strictjson.Unmarshal(b, &codes, ""); err != nil {
			return err
		}
		*s = Status{Codes: codes, List: true}
		return nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	n, ok := v.(json.Number)
	if !ok {
		return fmt.Errorf("expected an HTTP status or a list of them, got %s", describeJSON(v))
	}
	code, err := strconv.Atoi(string(n))
	if err != nil {
		return fmt.Errorf("expected an HTTP status (an integer), got %s", n)
	}
	*s = Status{Codes: []int{code}}
	return nil
}

// Check is one assertion of a checklist: Name, the services it is about (Source, Dest; SlowDest
// for bulkhead) and the parameters of that assertion. Unset optional parameters are nil. A Check
// marshals as exactly the fields it was given (durations and status in their given form), so that
// results echo it. Decoding refuses an unknown assertion, a parameter the assertion does not take
// and a missing required parameter, naming the parameter.
//
// Parameters by assertion (required; [optional]):
//
//	bounded_response_time  source, dest, max_latency
//	http_status            source, dest, status
//	http_success_status    [source, dest]
//	at_most_requests       source, dest, num_requests
//	num_requests           source, dest, num_requests
//	bounded_retries        source, dest, retries, [wait_time, errdelta, by_uri]
//	circuit_breaker        source, dest, closed_attempts, reset_time, [halfopen_attempts, headerprefix, remove_retries]
//	bulkhead               source, slow_dest, rate, [dependencies]
//	no_proxy_errors        [source, dest]
type Check struct {
	Name             string    `json:"name"`
	Source           string    `json:"source,omitempty"`
	Dest             string    `json:"dest,omitempty"`
	MaxLatency       *Duration `json:"max_latency,omitempty"`
	Status           *Status   `json:"status,omitempty"`
	NumRequests      *int      `json:"num_requests,omitempty"`
	Retries          *int      `json:"retries,omitempty"`
	WaitTime         *Duration `json:"wait_time,omitempty"`
	ErrDelta         *Duration `json:"errdelta,omitempty"`
	ByURI            *bool     `json:"by_uri,omitempty"`
	ClosedAttempts   *int      `json:"closed_attempts,omitempty"`
	ResetTime        *Duration `json:"reset_time,omitempty"`
	HalfOpenAttempts *int      `json:"halfopen_attempts,omitempty"`
	HeaderPrefix     *string   `json:"headerprefix,omitempty"`
	RemoveRetries    *bool     `json:"remove_retries,omitempty"`
	SlowDest         string    `json:"slow_dest,omitempty"`
	// Rate is the least number of requests per second to each other dependency (bulkhead).
	Rate         *float64 `json:"rate,omitempty"`
	Dependencies []string `json:"dependencies,omitempty"`

	// extra holds fields of a decoded CheckResult that this version does not know.
	extra map[string]json.RawMessage
}

// checkParam is one parameter of a check: how to read it, whether it is set and its value.
type checkParam struct {
	name  string
	value func(c *Check) any // nil when unset
	set   func(c *Check, raw json.RawMessage, path string) error
}

func decodeInto[T any](dst **T) func(c *Check, raw json.RawMessage, path string) error {
	return func(c *Check, raw json.RawMessage, path string) error {
		var v T
		if err := decodeValue(raw, &v, path); err != nil {
			return err
		}
		*dst = &v
		return nil
	}
}

// decodeValue decodes raw into v strictly, with path in errors, including the errors of types
// that decode themselves (Duration, Status).
func decodeValue(raw json.RawMessage, v any, path string) error {
	if u, ok := v.(json.Unmarshaler); ok {
		if err := u.UnmarshalJSON(raw); err != nil {
			return prefixError(path, err)
		}
		return nil
	}
	return strictjson.Unmarshal(raw, v, path)
}

func stringParam(name string, field func(c *Check) *string) checkParam {
	return checkParam{
		name: name,
		value: func(c *Check) any {
			if s := *field(c); s != "" {
				return s
			}
			return nil
		},
		set: func(c *Check, raw json.RawMessage, path string) error {
			var s string
			if err := strictjson.Unmarshal(raw, &s, path); err != nil {
				return err
			}
			if err := CheckService(s); err != nil {
				return &strictjson.Error{Path: path, Reason: err.Error()}
			}
			*field(c) = s
			return nil
		},
	}
}

func ptrParam[T any](name string, field func(c *Check) **T) checkParam {
	return checkParam{
		name: name,
		value: func(c *Check) any {
			if p := *field(c); p != nil {
				return *p
			}
			return nil
		},
		set: func(c *Check, raw json.RawMessage, path string) error { return decodeInto(field(c))(c, raw, path) },
	}
}

// checkParams lists every parameter in the order a Check marshals them.
var checkParams = []checkParam{
	{
		name:  "name",
		value: func(c *Check) any { return c.Name },
		set: func(c *Check, raw json.RawMessage, path string) error {
			return strictjson.Unmarshal(raw, &c.Name, path)
		},
	},
	stringParam("source", func(c *Check) *string { return &c.Source }),
	stringParam("dest", func(c *Check) *string { return &c.Dest }),
	ptrParam("max_latency", func(c *Check) **Duration { return &c.MaxLatency }),
	ptrParam("status", func(c *Check) **Status { return &c.Status }),
	ptrParam("num_requests", func(c *Check) **int { return &c.NumRequests }),
	ptrParam("retries", func(c *Check) **int { return &c.Retries }),
	ptrParam("wait_time", func(c *Check) **Duration { return &c.WaitTime }),
	ptrParam("errdelta", func(c *Check) **Duration { return &c.ErrDelta }),
	ptrParam("by_uri", func(c *Check) **bool { return &c.ByURI }),
	ptrParam("closed_attempts", func(c *Check) **int { return &c.ClosedAttempts }),
	ptrParam("reset_time", func(c *Check) **Duration { return &c.ResetTime }),
	ptrParam("halfopen_attempts", func(c *Check) **int { return &c.HalfOpenAttempts }),
	ptrParam("headerprefix", func(c *Check) **string { return &c.HeaderPrefix }),
	ptrParam("remove_retries", func(c *Check) **bool { return &c.RemoveRetries }),
	stringParam("slow_dest", func(c *Check) *string { return &c.SlowDest }),
	ptrParam("rate", func(c *Check) **float64 { return &c.Rate }),
	{
		name: "dependencies",
		value: func(c *Check) any {
			if c.Dependencies == nil {
				return nil
			}
			return c.Dependencies
		},
		set: func(c *Check, raw json.RawMessage, path string) error {
			var deps []string
			if err := strictjson.Unmarshal(raw, &deps, path); err != nil {
				return err
			}
			if deps == nil {
				deps = []string{}
			}
			c.Dependencies = deps
			return nil
		},
	},
}

func paramByName(name string) *checkParam {
	for i := range checkParams {
		if checkParams[i].name == name {
			return &checkParams[i]
		}
	}
	return nil
}

// checkSpec is what an assertion takes.
type checkSpec struct {
	required, optional []string
}

var checkSpecs = map[string]checkSpec{
	CheckBoundedResponseTime: {required: []string{"source", "dest", "max_latency"}},
	CheckHTTPStatus:          {required: []string{"source", "dest", "status"}},
	CheckHTTPSuccessStatus:   {optional: []string{"source", "dest"}},
	CheckAtMostRequests:      {required: []string{"source", "dest", "num_requests"}},
	CheckNumRequests:         {required: []string{"source", "dest", "num_requests"}},
	CheckBoundedRetries:      {required: []string{"source", "dest", "retries"}, optional: []string{"wait_time", "errdelta", "by_uri"}},
	CheckCircuitBreaker: {required: []string{"source", "dest", "closed_attempts", "reset_time"},
		optional: []string{"halfopen_attempts", "headerprefix", "remove_retries"}},
	CheckBulkhead:      {required: []string{"source", "slow_dest", "rate"}, optional: []string{"dependencies"}},
	CheckNoProxyErrors: {optional: []string{"source", "dest"}},
}

// CheckNames returns the names of the assertions, sorted.
func CheckNames() []string {
	names := make([]string, 0, len(checkSpecs))
	for n := range checkSpecs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CheckParameters returns the required and optional parameters of an assertion (name, source
// and dest are parameters like the others); ok is false for an unknown assertion.
func CheckParameters(name string) (required, optional []string, ok bool) {
	spec, ok := checkSpecs[name]
	return slices.Clone(spec.required), slices.Clone(spec.optional), ok
}

func (s checkSpec) takes(param string) bool {
	return param == "name" || slices.Contains(s.required, param) || slices.Contains(s.optional, param)
}

func (s checkSpec) describe(name string) string {
	switch {
	case len(s.required) == 0:
		return fmt.Sprintf("%s takes %s, all optional", name, strings.Join(s.optional, ", "))
	case len(s.optional) == 0:
		return fmt.Sprintf("%s takes %s", name, strings.Join(s.required, ", "))
	}
	return fmt.Sprintf("%s takes %s, and optionally %s", name, strings.Join(s.required, ", "), strings.Join(s.optional, ", "))
}

// Validate checks that c is a known assertion with every required parameter, no parameter it
// does not take, and values in range. Errors name the parameter (a *strictjson.Error whose Path
// is the parameter).
func (c *Check) Validate() error {
	spec, ok := checkSpecs[c.Name]
	if !ok {
		if c.Name == "" {
			return &strictjson.Error{Path: "name", Reason: "required: the assertion, one of " + strings.Join(CheckNames(), ", ")}
		}
		return &strictjson.Error{Path: "name", Reason: fmt.Sprintf("unknown assertion %q; known: %s", c.Name, strings.Join(CheckNames(), ", ")), Unknown: true}
	}
	for _, p := range checkParams {
		if p.value(c) != nil && !spec.takes(p.name) {
			return &strictjson.Error{Path: p.name, Reason: fmt.Sprintf("not a parameter of %s (%s)", c.Name, spec.describe(c.Name)), Unknown: true}
		}
	}
	for _, r := range spec.required {
		if paramByName(r).value(c) == nil {
			return &strictjson.Error{Path: r, Reason: fmt.Sprintf("required by %s (%s)", c.Name, spec.describe(c.Name))}
		}
	}
	for _, s := range []struct {
		name, value string
	}{{"source", c.Source}, {"dest", c.Dest}, {"slow_dest", c.SlowDest}} {
		if s.value != "" {
			if err := CheckService(s.value); err != nil {
				return &strictjson.Error{Path: s.name, Reason: err.Error()}
			}
		}
	}
	positive := func(name string, d *Duration) error {
		if d != nil && d.d <= 0 {
			return &strictjson.Error{Path: name, Reason: fmt.Sprintf("must be more than 0, got %s", d.d)}
		}
		return nil
	}
	nonNegative := func(name string, n *int, least int) error {
		if n != nil && *n < least {
			return &strictjson.Error{Path: name, Reason: fmt.Sprintf("must be at least %d, got %d", least, *n)}
		}
		return nil
	}
	for _, err := range []error{
		positive("max_latency", c.MaxLatency), positive("wait_time", c.WaitTime), positive("reset_time", c.ResetTime),
		nonNegative("num_requests", c.NumRequests, 0), nonNegative("retries", c.Retries, 0),
		nonNegative("closed_attempts", c.ClosedAttempts, 0), nonNegative("halfopen_attempts", c.HalfOpenAttempts, 1),
	} {
		if err != nil {
			return err
		}
	}
	if c.ErrDelta != nil && c.ErrDelta.d < 0 {
		return &strictjson.Error{Path: "errdelta", Reason: fmt.Sprintf("must not be negative, got %s", c.ErrDelta.d)}
	}
	if c.Status != nil {
		if len(c.Status.Codes) == 0 {
			return &strictjson.Error{Path: "status", Reason: "must list at least one HTTP status"}
		}
		for _, code := range c.Status.Codes {
			if code < 0 || code > 599 {
				return &strictjson.Error{Path: "status", Reason: fmt.Sprintf("%d is not an HTTP status (0 for a reset connection, else 100 to 599)", code)}
			}
		}
	}
	if c.Rate != nil && !(*c.Rate > 0 && !math.IsInf(*c.Rate, 1)) {
		return &strictjson.Error{Path: "rate", Reason: fmt.Sprintf("must be a number of requests per second more than 0, got %v", *c.Rate)}
	}
	if c.Dependencies != nil {
		if len(c.Dependencies) == 0 {
			return &strictjson.Error{Path: "dependencies", Reason: "must list at least one service when given"}
		}
		for i, d := range c.Dependencies {
			if err := CheckService(d); err != nil {
				return &strictjson.Error{Path: fmt.Sprintf("dependencies[%d]", i), Reason: err.Error()}
			}
		}
	}
	return nil
}

// MarshalJSON writes the check's fields: those it was given, as they were given.
func (c Check) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if err := c.appendFields(&b); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// appendFields writes "key":value pairs, comma separated, without braces.
func (c *Check) appendFields(b *bytes.Buffer) error {
	first := true
	add := func(k string, v any) error {
		kb, err := marshalNoEscape(k)
		if err != nil {
			return err
		}
		vb, err := marshalNoEscape(v)
		if err != nil {
			return fmt.Errorf("check %s: %s: %w", c.Name, k, err)
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
		return nil
	}
	for _, p := range checkParams {
		if v := p.value(c); v != nil {
			if err := add(p.name, v); err != nil {
				return err
			}
		}
	}
	keys := make([]string, 0, len(c.extra))
	for k := range c.extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := add(k, c.extra[k]); err != nil {
			return err
		}
	}
	return nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// UnmarshalJSON reads a check strictly: a known assertion, its parameters only, each of the right
// type, the required ones present and values in range. Errors are *strictjson.Error with the
// parameter as Path.
func (c *Check) UnmarshalJSON(b []byte) error {
	fields, err := objectFields(b, "")
	if err != nil {
		return err
	}
	var n Check
	if raw, ok := fields["name"]; ok {
		if err := strictjson.Unmarshal(raw, &n.Name, "name"); err != nil {
			return err
		}
	}
	spec, known := checkSpecs[n.Name]
	if !known {
		return n.Validate() // the name error
	}
	keys := slices.Sorted(maps.Keys(fields))
	for _, k := range keys {
		if !spec.takes(k) {
			return &strictjson.Error{Path: k, Reason: fmt.Sprintf("unknown parameter of %s (%s)", n.Name, spec.describe(n.Name)), Unknown: true}
		}
	}
	for _, k := range keys {
		if k == "name" || string(fields[k]) == "null" {
			continue
		}
		if err := paramByName(k).set(&n, fields[k], k); err != nil {
			return err
		}
	}
	if err := n.Validate(); err != nil {
		return err
	}
	*c = n
	return nil
}

// objectFields decodes a JSON object into its raw fields.
func objectFields(b []byte, path string) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := strictjson.Unmarshal(b, &fields, path); err != nil {
		return nil, err
	}
	if fields == nil {
		return nil, &strictjson.Error{Path: path, Reason: "must not be null: expected an object"}
	}
	return fields, nil
}

// prefixError puts prefix before the path of a *strictjson.Error; other errors are wrapped.
func prefixError(prefix string, err error) error {
	var se *strictjson.Error
	if errors.As(err, &se) {
		e := *se
		e.Path = strictjson.JoinPath(prefix, se.Path)
		return &e
	}
	return &strictjson.Error{Path: prefix, Reason: err.Error()}
}

// UnmarshalJSON reads a checklist strictly; errors name the check by index and the parameter,
// e.g. checks[2].max_latency.
func (l *Checklist) UnmarshalJSON(b []byte) error {
	var doc struct {
		LogServer string            `json:"log_server"`
		Checks    []json.RawMessage `json:"checks"`
	}
	if err := strictjson.Unmarshal(b, &doc, ""); err != nil {
		return err
	}
	if doc.Checks == nil {
		return &strictjson.Error{Path: "checks", Reason: "required: the list of assertions, {\"checks\": [{\"name\": ...}]}"}
	}
	out := Checklist{LogServer: doc.LogServer, Checks: make([]Check, len(doc.Checks))}
	for i, raw := range doc.Checks {
		if err := out.Checks[i].UnmarshalJSON(raw); err != nil {
			return prefixError(fmt.Sprintf("checks[%d]", i), err)
		}
	}
	*l = out
	return nil
}

// UnmarshalJSON reads a checks request strictly; error paths start at checklist, e.g.
// checklist.checks[2].status.
func (r *ChecksRequest) UnmarshalJSON(b []byte) error {
	fields, err := objectFields(b, "")
	if err != nil {
		return err
	}
	var out ChecksRequest
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		switch k {
		case "checklist":
			if err := out.Checklist.UnmarshalJSON(fields[k]); err != nil {
				return prefixError("checklist", err)
			}
		case "wait":
			if err := strictjson.Unmarshal(fields[k], &out.Wait, "wait"); err != nil {
				return err
			}
			if out.Wait == "" {
				continue
			}
			d, err := time.ParseDuration(out.Wait)
			switch {
			case err != nil:
				return &strictjson.Error{Path: "wait", Reason: fmt.Sprintf("%q is not a duration: give a Go duration such as \"30s\"", out.Wait)}
			case d < 0:
				return &strictjson.Error{Path: "wait", Reason: fmt.Sprintf("must not be negative, got %s", out.Wait)}
			}
		default:
			return &strictjson.Error{Path: k, Reason: "unknown field; known fields here: checklist, wait", Unknown: true}
		}
	}
	if _, ok := fields["checklist"]; !ok {
		return &strictjson.Error{Path: "checklist", Reason: "required: {\"checklist\": {\"checks\": [...]}}"}
	}
	*r = out
	return nil
}

// CheckResult is the outcome of a check: the check's own fields, as given, plus "result" (true
// when it passed) and "errormsg" (why it failed; "" when it passed), as Amalgam8's Gremlin wrote
// them.
type CheckResult struct {
	Check
	Result   bool   `json:"result"`
	ErrorMsg string `json:"errormsg"`
}

// Passed reports whether the check passed.
func (r CheckResult) Passed() bool { return r.Result }

// MarshalJSON writes the check's fields, then result and errormsg.
func (r CheckResult) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if err := r.Check.appendFields(&b); err != nil {
		return nil, err
	}
	if b.Len() > 1 {
		b.WriteByte(',')
	}
	msg, err := marshalNoEscape(r.ErrorMsg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(&b, `"result":%t,"errormsg":%s}`, r.Result, msg)
	return b.Bytes(), nil
}

// UnmarshalJSON reads a result as the controller writes it. It is lenient where Check is strict:
// a result is the server's answer, so parameters this version does not know are kept (and written
// back) rather than refused; known ones must still have the right type.
func (r *CheckResult) UnmarshalJSON(b []byte) error {
	fields, err := objectFields(b, "")
	if err != nil {
		return err
	}
	var out CheckResult
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[k]
		switch k {
		case "result":
			if err := strictjson.Unmarshal(raw, &out.Result, k); err != nil {
				return err
			}
		case "errormsg":
			if err := strictjson.Unmarshal(raw, &out.ErrorMsg, k); err != nil {
				return err
			}
		default:
			p := paramByName(k)
			if p == nil {
				if out.extra == nil {
					out.extra = map[string]json.RawMessage{}
				}
				out.extra[k] = append(json.RawMessage(nil), raw...)
				continue
			}
			if string(raw) == "null" {
				continue
			}
			if err := p.set(&out.Check, raw, k); err != nil {
				return err
			}
		}
	}
	*r = out
	return nil
}

func describeJSON(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(t)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return fmt.Sprintf("the string %q", t)
	}
	return fmt.Sprintf("%v", v)
}
