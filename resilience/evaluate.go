package resilience

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/a8fabric/a8/api"
)

// EvalOptions are the context of an evaluation.
type EvalOptions struct {
	// Topology is the recipe's topology: bulkhead takes the dependencies of its source from it
	// when the check lists none.
	Topology *api.Topology
	// InFlight is how many traced requests had begun but not been recorded when the records were
	// read. When more than 0, FAIL messages say so, and a check that would pass fails as
	// inconclusive: the missing records could have failed it.
	InFlight int
}

// Evaluate runs checks on a recipe's records and returns one result per check, in order; every
// check is evaluated (a failure does not stop the others). A check that does not validate fails
// with "invalid check: ...". recs are the records of the recipe's requests (any order; they are
// ordered by start_time, ties in the given order).
//
// A check's source and dest select the records whose src and dst match them: "svc" matches any
// tags, "svc:t1,t2" matches a record of service svc whose tags include t1 and t2 (a record's src
// and dst are "name:tag1,tag2", split at the first colon). Except for num_requests (when 0 are
// expected) and at_most_requests, a check without matching records fails: "no requests from A to
// B were recorded (N records in all)". The assertions:
//
//   - bounded_response_time: every record's request_time is at most max_latency. request_time is
//     the caller's view (from the request's arrival at the caller's sidecar to the last byte of
//     the answer), injected delays included; Amalgam8 compared upstream_response_time, which
//     leaves out what the sidecar itself added, and read Envoy's milliseconds as seconds.
//   - http_status: every record's status is in status (a code or a list). The first (oldest)
//     mismatch is reported as Amalgam8 did: 499 (the caller went away) as exactly "unexpected
//     connection termination" (without the in-flight note: Amalgam8's expected results compare it
//     literally); 0 as "connection reset (...)"; others "unexpected status 503 (...)".
//   - http_success_status: every record (between source and dest when given) has a 2xx status.
//   - at_most_requests: no request id has more than num_requests records (the first attempt
//     counts; Amalgam8 allowed num_requests+1).
//   - num_requests: exactly num_requests records.
//   - bounded_retries: records grouped by request id (by path with by_uri); a group's attempts
//     (its records, counting the proxy's own retries within a record) minus one is at most
//     retries. With wait_time, consecutive records of a group (by start_time) are at least
//     wait_time - errdelta apart (Amalgam8's test of this always passed).
//   - circuit_breaker: see circuitBreaker's model below.
//   - bulkhead: while the source is active (from its first request's start to its last request's
//     end), it keeps calling each of its other dependencies at least rate times a second: no gap
//     of more than 1/rate between consecutive requests to a dependency, nor before the first or
//     after the last. The dependencies are the check's, else the topology's (EvalOptions), else
//     every destination the source called in the records; slow_dest is left out.
//   - no_proxy_errors: no record (between source and dest when given) carries a response flag of
//     a failure the proxy made: NR, UH, UF, UO, URX, UT, UC. Injected faults (FI, DI) and callers
//     going away (DC) are not proxy errors.
//
// The circuit_breaker model replays the records source→dest (those whose request_id starts with
// headerprefix; with remove_retries, consecutive records of one request id collapsed into one that
// starts with the first and ends as the last) in start_time order. A record fails when its status
// is not 2xx (0 and 499 included) or its response_flags include FI. Records the caller's proxy
// refused without sending (UO: a circuit-breaker limit; UH: no healthy instance, e.g. all ejected)
// never reached dest and are left out.
//
//   - closed: a failure adds one to the consecutive failures, a success resets them; more than
//     closed_attempts consecutive failures open the circuit at the start of the last one.
//   - open: a request that starts less than reset_time after the circuit opened is a violation;
//     the first that starts at or after reset_time makes the circuit half-open and is its trial.
//   - half-open: a failure opens the circuit again (at its start); halfopen_attempts (default 1)
//     successes close it.
//
// The check passes when there is no violation: a caller without a breaker that keeps calling a
// failing service fails it; one that waits reset_time after closed_attempts+1 failures passes.
func Evaluate(checks []api.Check, recs []api.Record, opts EvalOptions) []api.CheckResult {
	e := &evaluator{opts: opts, all: slices.Clone(recs)}
	slices.SortStableFunc(e.all, func(a, b api.Record) int { return a.StartTime.Compare(b.StartTime) })
	out := make([]api.CheckResult, len(checks))
	for i, c := range checks {
		out[i] = api.CheckResult{Check: c, Result: true}
		if err := c.Validate(); err != nil {
			out[i].Result, out[i].ErrorMsg = false, "invalid check: "+err.Error()
			continue
		}
		if msg, ok := e.check(&c); !ok {
			out[i].Result, out[i].ErrorMsg = false, msg
		} else if n := opts.InFlight; n > 0 {
			out[i].Result, out[i].ErrorMsg = false, fmt.Sprintf("inconclusive: passed on the records that arrived, but %s still in flight when checked; wait longer (a8ctl recipe-run -w) or look for lost records",
				plural(n, "request was", "requests were"))
		}
	}
	return out
}

// Passed reports whether every result passed.
func Passed(results []api.CheckResult) bool {
	for _, r := range results {
		if !r.Result {
			return false
		}
	}
	return true
}

type evaluator struct {
	opts EvalOptions
	all  []api.Record // by start time
}

// pattern is a check's service: any service when empty.
type pattern struct {
	given string
	name  string
	tags  []string
}

func newPattern(s string) pattern {
	name, tags := api.SplitService(s)
	return pattern{given: s, name: name, tags: tags}
}

func (p pattern) String() string {
	if p.given == "" {
		return "any service"
	}
	return p.given
}

func (p pattern) matches(svc string) bool {
	if p.given == "" {
		return true
	}
	name, tags := api.SplitService(svc)
	if name != p.name {
		return false
	}
	for _, t := range p.tags {
		if !slices.Contains(tags, t) {
			return false
		}
	}
	return true
}

func (e *evaluator) between(src, dst pattern) []api.Record {
	var out []api.Record
	for _, r := range e.all {
		if src.matches(r.Src) && dst.matches(r.Dst) {
			out = append(out, r)
		}
	}
	return out
}

// fail adds the in-flight note to a FAIL message.
func (e *evaluator) fail(msg string) string {
	switch n := e.opts.InFlight; {
	case n == 1:
		return msg + " (1 request still in flight when checked)"
	case n > 1:
		return fmt.Sprintf("%s (%d requests still in flight when checked)", msg, n)
	}
	return msg
}

func (e *evaluator) noRecords(src, dst pattern) string {
	return e.fail(e.noRecordsText(src, dst, ""))
}

// noRecordsText says that no request from src to dst (with what) was recorded, without the
// in-flight note.
func (e *evaluator) noRecordsText(src, dst pattern, what string) string {
	return fmt.Sprintf("no requests from %s to %s%s were recorded (%s in all)", src, dst, what, plural(len(e.all), "record", "records"))
}

// check evaluates a valid check; it returns the FAIL message and false when it fails.
func (e *evaluator) check(c *api.Check) (string, bool) {
	src, dst := newPattern(c.Source), newPattern(c.Dest)
	switch c.Name {
	case api.CheckBulkhead:
		return e.bulkhead(c)
	case api.CheckNumRequests:
		return e.numRequests(c, e.between(src, dst), src, dst)
	case api.CheckAtMostRequests:
		return e.atMostRequests(c, e.between(src, dst), src, dst)
	}
	recs := e.between(src, dst)
	if len(recs) == 0 {
		return e.noRecords(src, dst), false
	}
	switch c.Name {
	case api.CheckBoundedResponseTime:
		return e.boundedResponseTime(c, recs)
	case api.CheckHTTPStatus:
		return e.httpStatus(c, recs)
	case api.CheckHTTPSuccessStatus:
		return e.httpSuccessStatus(recs)
	case api.CheckBoundedRetries:
		return e.boundedRetries(c, recs)
	case api.CheckCircuitBreaker:
		return e.circuitBreaker(c, recs, src, dst)
	case api.CheckNoProxyErrors:
		return e.noProxyErrors(recs)
	}
	return e.fail(fmt.Sprintf("invalid check: unknown assertion %q", c.Name)), false
}

// ms converts a record's milliseconds to a duration.
func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// human writes a duration for messages: "6.2s", "120ms", "350µs".
func human(d time.Duration) string {
	switch a := max(d, -d); {
	case a >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	case a >= time.Microsecond:
		return d.Round(time.Microsecond).String()
	}
	return d.String()
}

func reqName(r *api.Record) string {
	if r.RequestID != "" {
		return "request " + r.RequestID
	}
	return "record " + r.ID
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func success(status int) bool { return status >= 200 && status <= 299 }

func describeStatus(status int) string {
	switch status {
	case 0:
		return "a connection reset (status 0)"
	case 499:
		return "status 499 (the caller went away)"
	}
	return fmt.Sprintf("status %d", status)
}

func (e *evaluator) boundedResponseTime(c *api.Check, recs []api.Record) (string, bool) {
	bound := c.MaxLatency.Duration()
	over, slowest := 0, -1
	for i := range recs {
		if ms(recs[i].RequestTime) > bound {
			over++
			if slowest < 0 || recs[i].RequestTime > recs[slowest].RequestTime {
				slowest = i
			}
		}
	}
	if over == 0 {
		return "", true
	}
	r := &recs[slowest]
	return e.fail(fmt.Sprintf("%s took %s, more than max_latency %s (%d of %s took longer)",
		reqName(r), human(ms(r.RequestTime)), bound, over, plural(len(recs), "request", "requests"))), false
}

func listCodes(codes []int) string {
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprint(c)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "one of " + strings.Join(parts, ", ")
}

func (e *evaluator) httpStatus(c *api.Check, recs []api.Record) (string, bool) {
	codes := c.Status.Codes
	bad, first := 0, -1
	for i := range recs {
		if !slices.Contains(codes, recs[i].Status) {
			bad++
			if first < 0 {
				first = i
			}
		}
	}
	if bad == 0 {
		return "", true
	}
	r := &recs[first]
	detail := fmt.Sprintf("%s; expected %s; %d of %s had another status", reqName(r), listCodes(codes), bad, plural(len(recs), "request", "requests"))
	switch r.Status {
	case 499:
		// Amalgam8's message, exactly: its expected results compare errormsg literally.
		return "unexpected connection termination", false
	case 0:
		return e.fail("connection reset (" + detail + ")"), false
	}
	return e.fail(fmt.Sprintf("unexpected status %d (%s)", r.Status, detail)), false
}

func (e *evaluator) httpSuccessStatus(recs []api.Record) (string, bool) {
	bad, first := 0, -1
	for i := range recs {
		if !success(recs[i].Status) {
			bad++
			if first < 0 {
				first = i
			}
		}
	}
	if bad == 0 {
		return "", true
	}
	r := &recs[first]
	return e.fail(fmt.Sprintf("%d of %s did not succeed (2xx); the first, %s from %s to %s, got %s",
		bad, plural(len(recs), "request", "requests"), reqName(r), r.Src, r.Dst, describeStatus(r.Status))), false
}

// requestGroup is the records of one request id (or path).
type requestGroup struct {
	key  string // "request abc", "path /x"
	recs []api.Record
}

// groupRecords groups records by request id, or by path; records without a request id are
// groups of their own (nothing ties them to others).
func groupRecords(recs []api.Record, byPath bool) []*requestGroup {
	var groups []*requestGroup
	index := map[string]*requestGroup{}
	for _, r := range recs {
		var key string
		switch {
		case byPath:
			key = "path " + r.Path
		case r.RequestID == "":
			groups = append(groups, &requestGroup{key: reqName(&r), recs: []api.Record{r}})
			continue
		default:
			key = "request " + r.RequestID
		}
		g := index[key]
		if g == nil {
			g = &requestGroup{key: key}
			index[key] = g
			groups = append(groups, g)
		}
		g.recs = append(g.recs, r)
	}
	return groups
}

func (e *evaluator) atMostRequests(c *api.Check, recs []api.Record, src, dst pattern) (string, bool) {
	bound := *c.NumRequests
	over := 0
	var worst *requestGroup
	groups := groupRecords(recs, false)
	for _, g := range groups {
		if len(g.recs) > bound {
			over++
			if worst == nil || len(g.recs) > len(worst.recs) {
				worst = g
			}
		}
	}
	if over == 0 {
		return "", true
	}
	return e.fail(fmt.Sprintf("%s: %d requests from %s to %s, at most %d expected (%d of %s over)",
		worst.key, len(worst.recs), src, dst, bound, over, plural(len(groups), "request id", "request ids"))), false
}

func (e *evaluator) numRequests(c *api.Check, recs []api.Record, src, dst pattern) (string, bool) {
	want := *c.NumRequests
	if len(recs) == want {
		return "", true
	}
	if len(recs) == 0 {
		return e.fail(e.noRecordsText(src, dst, "") + fmt.Sprintf(", expected %d", want)), false
	}
	verb := "were"
	if len(recs) == 1 {
		verb = "was"
	}
	return e.fail(fmt.Sprintf("%s from %s to %s %s recorded, expected %d", plural(len(recs), "request", "requests"), src, dst, verb, want)), false
}

func attempts(r *api.Record) int { return max(r.Attempts, 1) }

func (e *evaluator) boundedRetries(c *api.Check, recs []api.Record) (string, bool) {
	retries := *c.Retries
	byPath := c.ByURI != nil && *c.ByURI
	groups := groupRecords(recs, byPath)
	var msg string
	over := 0
	for _, g := range groups {
		n := 0
		for i := range g.recs {
			n += attempts(&g.recs[i])
		}
		if n-1 > retries {
			over++
			if msg == "" {
				span := g.recs[len(g.recs)-1].StartTime.Sub(g.recs[0].StartTime)
				msg = fmt.Sprintf("%s: %d attempts within %s (%d retries), bound %d", g.key, n, human(span), n-1, retries)
			}
		}
	}
	if over > 1 {
		msg += fmt.Sprintf(" (%d of %s over the bound)", over, plural(len(groups), "group", "groups"))
	}
	if msg != "" {
		return e.fail(msg), false
	}
	if c.WaitTime == nil {
		return "", true
	}
	wait := c.WaitTime.Duration()
	var delta time.Duration
	if c.ErrDelta != nil {
		delta = c.ErrDelta.Duration()
	}
	least := wait - delta
	for _, g := range groups {
		for i := 1; i < len(g.recs); i++ {
			gap := g.recs[i].StartTime.Sub(g.recs[i-1].StartTime)
			if gap < least {
				bound := "wait_time " + c.WaitTime.String()
				if delta > 0 {
					bound += " - errdelta " + c.ErrDelta.String()
				}
				return e.fail(fmt.Sprintf("%s: retry %d was sent %s after the previous attempt, less than %s",
					g.key, i, human(gap), bound)), false
			}
		}
	}
	return "", true
}

func failed(r *api.Record) bool {
	return !success(r.Status) || hasFlag(r.ResponseFlags, "FI")
}

func flags(s string) []string {
	if s == "" || s == "-" {
		return nil
	}
	return strings.Split(s, ",")
}

func hasFlag(s, flag string) bool { return slices.Contains(flags(s), flag) }

func (e *evaluator) circuitBreaker(c *api.Check, all []api.Record, src, dst pattern) (string, bool) {
	closedAttempts := *c.ClosedAttempts
	reset := c.ResetTime.Duration()
	halfOpen := 1
	if c.HalfOpenAttempts != nil {
		halfOpen = *c.HalfOpenAttempts
	}
	var recs []api.Record
	refused, prefixed := 0, 0
	for _, r := range all {
		if c.HeaderPrefix != nil && !strings.HasPrefix(r.RequestID, *c.HeaderPrefix) {
			continue
		}
		prefixed++
		if hasFlag(r.ResponseFlags, "UO") || hasFlag(r.ResponseFlags, "UH") {
			refused++
			continue
		}
		recs = append(recs, r)
	}
	if c.RemoveRetries != nil && *c.RemoveRetries {
		var collapsed []api.Record
		for _, r := range recs {
			if n := len(collapsed); n > 0 && r.RequestID != "" && collapsed[n-1].RequestID == r.RequestID {
				start := collapsed[n-1].StartTime
				collapsed[n-1] = r
				collapsed[n-1].StartTime = start
				continue
			}
			collapsed = append(collapsed, r)
		}
		recs = collapsed
	}
	if len(recs) == 0 {
		what := ""
		if c.HeaderPrefix != nil {
			what = fmt.Sprintf(" with a request id starting %q", *c.HeaderPrefix)
		}
		if prefixed == 0 {
			return e.fail(e.noRecordsText(src, dst, what)), false
		}
		return e.fail(fmt.Sprintf("no requests from %s to %s%s reached the destination: the proxy refused every one (%d, flags UO or UH)", src, dst, what, refused)), false
	}
	const (
		closed = iota
		open
		halfOpenState
	)
	state, failures, successes := closed, 0, 0
	var openedAt time.Time
	var why, first string
	violations := 0
	for i := range recs {
		r := &recs[i]
		if state == open {
			since := r.StartTime.Sub(openedAt)
			if since < reset {
				violations++
				if first == "" {
					first = fmt.Sprintf("%s sent %s after the circuit opened, reset_time %s (%s", reqName(r), human(since), c.ResetTime, why)
				}
				continue
			}
			state, successes = halfOpenState, 0
		}
		switch state {
		case closed:
			if !failed(r) {
				failures = 0
				continue
			}
			failures++
			if failures > closedAttempts {
				state, openedAt = open, r.StartTime
				why = fmt.Sprintf("it opened at %s after %d consecutive failures, closed_attempts %d", reqName(r), failures, closedAttempts)
			}
		case halfOpenState:
			if failed(r) {
				state, openedAt = open, r.StartTime
				why = fmt.Sprintf("it opened again at %s, a failed trial", reqName(r))
				continue
			}
			successes++
			if successes >= halfOpen {
				state, failures = closed, 0
			}
		}
	}
	if violations == 0 {
		return "", true
	}
	return e.fail(fmt.Sprintf("%s; %s sent while open)", first, plural(violations, "request was", "requests were"))), false
}

// gap is a stretch without requests to a dependency.
type gap struct {
	dep      string
	d        time.Duration
	from, to string
}

func (e *evaluator) bulkhead(c *api.Check) (string, bool) {
	src, slow := newPattern(c.Source), newPattern(c.SlowDest)
	var fromSrc []api.Record
	for _, r := range e.all {
		if src.matches(r.Src) {
			fromSrc = append(fromSrc, r)
		}
	}
	if len(fromSrc) == 0 {
		return e.noRecords(src, pattern{}), false
	}
	var deps []string
	switch {
	case c.Dependencies != nil:
		deps = slices.Clone(c.Dependencies)
	case e.opts.Topology != nil:
		var ps problems
		tp := indexTopology(&ps, "", *e.opts.Topology)
		for i, s := range tp.services {
			if !src.matches(s.given) {
				continue
			}
			for _, d := range tp.deps[i] {
				if g := tp.services[d].given; !slices.Contains(deps, g) {
					deps = append(deps, g)
				}
			}
		}
	default:
		for _, r := range fromSrc {
			if !slices.Contains(deps, r.Dst) {
				deps = append(deps, r.Dst)
			}
		}
		slices.Sort(deps)
	}
	deps = slices.DeleteFunc(deps, func(d string) bool { return slowCovers(slow, d) })
	if len(deps) == 0 {
		return e.fail(fmt.Sprintf("%s has no dependency other than %s to check: give dependencies, or a topology that lists them", src, slow)), false
	}
	bound := time.Duration(float64(time.Second) / *c.Rate)
	start := fromSrc[0].StartTime
	end := start
	var last *api.Record
	for i := range fromSrc {
		r := &fromSrc[i]
		if t := r.StartTime.Add(ms(r.RequestTime)); t.After(end) {
			end, last = t, r
		}
	}
	var worst *gap
	starved := 0
	for _, dep := range deps {
		p := newPattern(dep)
		var recs []*api.Record
		for i := range fromSrc {
			if p.matches(fromSrc[i].Dst) {
				recs = append(recs, &fromSrc[i])
			}
		}
		var g gap
		if len(recs) == 0 {
			g = gap{dep, end.Sub(start), "the first request from " + src.String(), "the end of the test"}
		} else {
			g = gap{dep, recs[0].StartTime.Sub(start), "the first request from " + src.String(), reqName(recs[0])}
			for i := 1; i < len(recs); i++ {
				if d := recs[i].StartTime.Sub(recs[i-1].StartTime); d > g.d {
					g = gap{dep, d, reqName(recs[i-1]), reqName(recs[i])}
				}
			}
			lastDep := recs[len(recs)-1]
			if d := end.Sub(lastDep.StartTime); d > g.d && last != nil {
				g = gap{dep, d, reqName(lastDep), "the end of " + reqName(last) + ", the test's last"}
			}
		}
		if g.d > bound {
			starved++
			if worst == nil || g.d > worst.d {
				worst = &g
			}
		}
	}
	if starved == 0 {
		return "", true
	}
	msg := fmt.Sprintf("%s did not call %s for %s (from %s to %s), more than 1/rate = %s",
		src, worst.dep, human(worst.d), worst.from, worst.to, human(bound))
	if starved > 1 {
		msg += fmt.Sprintf(" (%d of %s starved)", starved, plural(len(deps), "dependency", "dependencies"))
	}
	return e.fail(msg), false
}

// slowCovers reports whether a dependency is (a version of) the slow destination.
func slowCovers(slow pattern, dep string) bool {
	name, tags := api.SplitService(dep)
	return slow.matches(dep) || (name == slow.name && len(tags) == 0)
}

// proxyFlags are the response flags of failures the proxy made, in the order messages list them.
var proxyFlags = []string{"NR", "UH", "UF", "UO", "URX", "UT", "UC"}

func (e *evaluator) noProxyErrors(recs []api.Record) (string, bool) {
	counts := map[string]int{}
	bad, first := 0, -1
	for i := range recs {
		hit := false
		for _, f := range flags(recs[i].ResponseFlags) {
			if slices.Contains(proxyFlags, f) {
				counts[f]++
				hit = true
			}
		}
		if hit {
			bad++
			if first < 0 {
				first = i
			}
		}
	}
	if bad == 0 {
		return "", true
	}
	var parts []string
	for _, f := range proxyFlags {
		if n := counts[f]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", f, n))
		}
	}
	r := &recs[first]
	return e.fail(fmt.Sprintf("proxy errors in %d of %s: %s (the first: %s from %s to %s, flags %s)",
		bad, plural(len(recs), "request", "requests"), strings.Join(parts, ", "), reqName(r), r.Src, r.Dst, r.ResponseFlags)), false
}
