// Package rules is the shared meaning of a8's routing and action rules: validation with precise
// errors (used by the controller before anything is stored), parsing of rule files (JSON or YAML),
// and compilation of one tenant's rules into the per-destination, priority-ordered form with
// precompiled regexes that the sidecar's request path reads.
package rules

import (
	"fmt"
	"math"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/a8fabric/a8/api"
)

// Limits on rule fields.
const (
	MaxIDBytes          = 256
	MaxDestinationBytes = 64
	MaxTagBytes         = 256
	MaxReturnCode       = 599
	MinReturnCode       = -5
	MaxSeconds          = 86400 // a day: the longest timeout, delay or window
	MaxRetries          = 100
	MaxCount            = 1 << 30 // resilience limits
)

// HeaderPattern is the regular expression of a header match. A lone "*" is taken as "anything", as
// Gremlin's recipes (a8ctl recipe-run without -p) send it; everything else is a regular expression.
func HeaderPattern(p string) string {
	if p == "*" {
		return ".*"
	}
	return p
}

// Problem is one thing wrong with a rule: where (a path such as rules[2].route.backends[1].weight)
// and why.
type Problem struct {
	Path   string
	Reason string
	RuleID string // the id of the rule, if it has one
}

func (p Problem) String() string {
	if p.RuleID != "" {
		return fmt.Sprintf("%s: %s (rule %q)", p.Path, p.Reason, p.RuleID)
	}
	return p.Path + ": " + p.Reason
}

// ValidationError lists everything wrong with a set of rules.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// validator collects problems under a path.
type validator struct {
	problems []Problem
	ruleID   string
	regexes  regexes // the header regexes compiled so far, which Compile reuses
}

// regexes holds the header regexes of one Validate or Compile call by pattern (as HeaderPattern
// returns it), with the error of those that do not compile, so that a pattern many rules share is
// compiled once. It lives only as long as the call: a process-wide cache would grow with every rule
// set ever seen.
type regexes map[string]compiledRegex

type compiledRegex struct {
	re  *regexp.Regexp
	err error
}

// compile returns the regex of pattern, compiling it on first use.
func (c regexes) compile(pattern string) (*regexp.Regexp, error) {
	if r, ok := c[pattern]; ok {
		return r.re, r.err
	}
	re, err := regexp.Compile(pattern)
	c[pattern] = compiledRegex{re, err}
	return re, err
}

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{path, fmt.Sprintf(format, args...), v.ruleID})
}

// Validate checks rules against the schema and a8's semantic checks (weights that add up, regexes
// that compile, fields that belong to the action kind). Paths are rules[i]..., with the rule's id
// added where it has one. A nil error means every rule is valid.
func Validate(rs []api.Rule) error {
	v := validator{regexes: regexes{}}
	return v.all(rs)
}

// all checks rules as Validate does, keeping the compiled header regexes in v.regexes.
func (v *validator) all(rs []api.Rule) error {
	ids := map[string]int{}
	for i := range rs {
		r := &rs[i]
		path := fmt.Sprintf("rules[%d]", i)
		if r.ID != "" {
			if j, dup := ids[r.ID]; dup {
				v.add(path+".id", "%q is also the id of rules[%d]; ids must be unique", r.ID, j)
			}
			ids[r.ID] = i
		}
		v.rule(path, r)
	}
	if len(v.problems) > 0 {
		return &ValidationError{Problems: v.problems}
	}
	return nil
}

// ValidateRule checks one rule; path names it in errors (e.g. "rules[0]").
func ValidateRule(path string, r *api.Rule) error {
	v := validator{regexes: regexes{}}
	v.rule(path, r)
	if len(v.problems) > 0 {
		return &ValidationError{Problems: v.problems}
	}
	return nil
}

func (v *validator) rule(path string, r *api.Rule) {
	v.ruleID = r.ID
	defer func() { v.ruleID = "" }()
	if r.ID != "" {
		v.text(path+".id", r.ID, MaxIDBytes)
	}
	if r.Destination == "" {
		v.add(path+".destination", "required: the service the rule applies to")
	} else {
		v.name(path+".destination", r.Destination)
	}
	v.tags(path+".tags", r.Tags, false, false)
	if r.Match != nil {
		v.match(path+".match", r.Match)
	}
	switch {
	case r.Route != nil && r.Actions != nil:
		v.add(path, "has both route and actions: a rule either routes or acts; split it in two")
	case r.Route == nil && r.Actions == nil:
		v.add(path, "has neither route nor actions: give one")
	case r.Route != nil:
		v.route(path+".route", r.Destination, r.Route)
	default:
		if len(r.Actions) == 0 {
			v.add(path+".actions", "must have at least one action")
		}
		for i := range r.Actions {
			v.action(fmt.Sprintf("%s.actions[%d]", path, i), &r.Actions[i])
		}
	}
}

// text checks an identifier: non-empty, at most max bytes, no spaces or control characters.
func (v *validator) text(path, s string, max int) {
	switch {
	case s == "":
		v.add(path, "must not be empty")
	case len(s) > max:
		v.add(path, "longer than %d bytes (%d)", max, len(s))
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		v.add(path, "%q contains spaces or control characters", s)
	}
}

// name checks a service name: what the sidecar can route to as /<name>/ and match as a source.
func (v *validator) name(path, s string) {
	switch {
	case len(s) > MaxDestinationBytes:
		v.add(path, "longer than %d bytes (%d)", MaxDestinationBytes, len(s))
	case strings.ContainsAny(s, "/?#"):
		v.add(path, "%q contains /, ? or #: a service name is one path segment", s)
	default:
		v.text(path, s, MaxDestinationBytes)
	}
}

// tags checks a tag list: non-empty strings, no duplicates; required lists must have one. Tags that
// name instances (backends, sources, actions) must not contain commas, which separate tags in
// Amalgam8's "name:tag1,tag2" forms.
func (v *validator) tags(path string, tags []string, required, instanceTags bool) {
	if required && len(tags) == 0 {
		v.add(path, "required: at least one tag, such as \"version=v1\"")
		return
	}
	for i, t := range tags {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case t == "":
			v.add(p, "must not be empty")
		case len(t) > MaxTagBytes:
			v.add(p, "longer than %d bytes (%d)", MaxTagBytes, len(t))
		case instanceTags && strings.Contains(t, ","):
			v.add(p, "%q contains a comma, which separates tags; give each tag on its own", t)
		case slices.Index(tags, t) < i:
			v.add(p, "%q is listed twice", t)
		}
	}
}

// seconds checks a time in seconds: more than 0, at most MaxSeconds.
func (v *validator) seconds(path string, f float64, what string) {
	if !(f > 0 && f <= MaxSeconds) {
		v.add(path, "%s must be more than 0 and at most %d seconds, got %v", what, MaxSeconds, f)
	}
}

func (v *validator) match(path string, m *api.Match) {
	v.condition(path, m.Source, m.Headers)
	for _, group := range []struct {
		name  string
		conds []api.MatchCondition
	}{{"all", m.All}, {"any", m.Any}, {"none", m.None}} {
		for i, c := range group.conds {
			p := fmt.Sprintf("%s.%s[%d]", path, group.name, i)
			if c.Source == nil && len(c.Headers) == 0 {
				v.add(p, "empty condition: give source or headers")
			}
			v.condition(p, c.Source, c.Headers)
		}
	}
}

func (v *validator) condition(path string, src *api.Source, headers map[string]string) {
	if src != nil {
		if src.Name == "" {
			v.add(path+".source.name", "required: the name of the calling service")
		} else {
			v.name(path+".source.name", src.Name)
		}
		v.tags(path+".source.tags", src.Tags, false, true)
	}
	names := make([]string, 0, len(headers))
	for h := range headers {
		names = append(names, h)
	}
	slices.Sort(names)
	seen := map[string]string{}
	for _, h := range names {
		p := path + ".headers." + h
		if !validHeaderName(h) {
			v.add(p, "%q is not a valid HTTP header name", h)
			continue
		}
		canonical := textproto.CanonicalMIMEHeaderKey(h)
		if first, dup := seen[canonical]; dup {
			v.add(p, "same header as %q (header names are case-insensitive)", first)
		}
		seen[canonical] = h
		if _, err := v.regexes.compile(HeaderPattern(headers[h])); err != nil {
			v.add(p, "invalid regex %q: %v", headers[h], err)
		}
	}
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

var lbTypes = []string{"round_robin", "least_request", "random"}

func (v *validator) route(path, destination string, r *api.Route) {
	if len(r.Backends) == 0 {
		v.add(path+".backends", "required: at least one backend, such as {\"tags\": [\"version=v1\"]}")
	}
	if r.HTTPReqTimeout != nil {
		v.seconds(path+".http_req_timeout", *r.HTTPReqTimeout, "the timeout")
	}
	if r.HTTPReqRetries != nil && (*r.HTTPReqRetries < 0 || *r.HTTPReqRetries > MaxRetries) {
		v.add(path+".http_req_retries", "must be in [0, %d], got %d", MaxRetries, *r.HTTPReqRetries)
	}
	if r.URI != nil {
		v.uri(path+".uri", r.URI)
	}
	sum := 0.0
	for i := range r.Backends {
		b := &r.Backends[i]
		p := fmt.Sprintf("%s.backends[%d]", path, i)
		if b.Name != "" {
			v.name(p+".name", b.Name)
		}
		v.tags(p+".tags", b.Tags, true, true)
		if b.Weight != nil {
			if w := *b.Weight; !(w > 0 && w <= 1) {
				v.add(p+".weight", "must be in (0, 1], got %v", w)
			} else {
				sum += w
			}
		}
		if b.LBType != "" && !slices.Contains(lbTypes, b.LBType) {
			v.add(p+".lb_type", "%q is not one of %s", b.LBType, strings.Join(lbTypes, ", "))
		}
		if b.Resilience != nil {
			v.resilience(p+".resilience", b.Resilience)
		}
		if b.URI != nil {
			v.uri(p+".uri", b.URI)
		}
		if b.Timeout != nil {
			v.seconds(p+".timeout", *b.Timeout, "the timeout")
		}
		if b.Retries != nil && (*b.Retries < 0 || *b.Retries > MaxRetries) {
			v.add(p+".retries", "must be in [0, %d], got %d", MaxRetries, *b.Retries)
		}
	}
	// Unweighted backends share what the weighted ones leave, which may be nothing: Amalgam8's
	// route-set --selector 'v2(weight=1.0)' sends a default backend that then takes no traffic.
	if eps := 1e-9; sum > 1+eps {
		v.add(path+".backends", "weights of destination %s sum to %s, more than 1", destination, trimFloat(sum))
	}
}

func trimFloat(f float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", math.Round(f*1e6)/1e6), "0"), ".")
}

func (v *validator) uri(path string, u *api.URI) {
	if u.Path != "" && u.Prefix != "" {
		v.add(path, "give path or prefix, not both")
	}
	for _, f := range []struct{ name, value string }{{"path", u.Path}, {"prefix", u.Prefix}, {"prefix_rewrite", u.PrefixRewrite}} {
		if f.value != "" && !strings.HasPrefix(f.value, "/") {
			v.add(path+"."+f.name, "must start with /, got %q", f.value)
		}
	}
	if u.Path == "" && u.Prefix == "" && u.PrefixRewrite == "" {
		v.add(path, "empty: give path, prefix or prefix_rewrite")
	}
}

func (v *validator) resilience(path string, r *api.Resilience) {
	for _, f := range []struct {
		name  string
		value int
	}{
		{"max_connections", r.MaxConnections}, {"max_pending_requests", r.MaxPendingRequests}, {"max_requests", r.MaxRequests},
		{"consecutive_errors", r.ConsecutiveErrors}, {"max_requests_per_connection", r.MaxRequestsPerConnection},
	} {
		if f.value < 0 || f.value > MaxCount {
			v.add(path+"."+f.name, "must be in [0, %d], got %d", MaxCount, f.value)
		}
	}
	for _, f := range []struct {
		name  string
		value float64
	}{{"sleep_window", r.SleepWindow}, {"detection_interval", r.DetectionInterval}} {
		if !(f.value >= 0 && f.value <= MaxSeconds) {
			v.add(path+"."+f.name, "must be in [0, %d] seconds, got %v", MaxSeconds, f.value)
		}
	}
}

func (v *validator) action(path string, a *api.Action) {
	v.tags(path+".tags", a.Tags, false, true)
	probability := func() {
		if a.Probability != nil {
			if p := *a.Probability; !(p > 0 && p <= 1) {
				v.add(path+".probability", "must be in (0, 1], got %v", p)
			}
		}
	}
	type field struct {
		name string
		set  bool
	}
	notHere := func(kind string, fields ...field) {
		for _, f := range fields {
			if f.set {
				v.add(path+"."+f.name, "is not a field of %s action", kind)
			}
		}
	}
	switch a.Action {
	case api.ActionDelay:
		if a.Duration == 0 {
			v.add(path+".duration", "required: the delay in seconds, more than 0")
		} else {
			v.seconds(path+".duration", a.Duration, "the delay")
		}
		probability()
		notHere("a delay", field{"return_code", a.ReturnCode != nil}, field{"log_key", a.LogKey != ""}, field{"log_value", a.LogValue != ""})
	case api.ActionAbort:
		if a.ReturnCode == nil {
			v.add(path+".return_code", "required: an HTTP status, or -1 to reset the connection")
		} else if c := *a.ReturnCode; c < MinReturnCode || c > MaxReturnCode {
			v.add(path+".return_code", "must be in [%d, %d], got %d", MinReturnCode, MaxReturnCode, c)
		}
		probability()
		notHere("an abort", field{"duration", a.Duration != 0}, field{"log_key", a.LogKey != ""}, field{"log_value", a.LogValue != ""})
	case api.ActionTrace:
		notHere("a trace", field{"duration", a.Duration != 0}, field{"return_code", a.ReturnCode != nil}, field{"probability", a.Probability != nil})
	case "":
		v.add(path+".action", "required: delay, abort or trace")
	default:
		v.add(path+".action", "%q is not one of delay, abort, trace", a.Action)
	}
}
