package resilience

import (
	"time"

	"github.com/a8fabric/a8/api"
)

// Constructors of checks and gremlins for Go programs. Services are named as in topologies:
// "name" (any version) or "name:tag1,tag2". The values are not validated here: Evaluate fails an
// invalid check with the reason, and Rules refuses an invalid gremlin.

func duration(d time.Duration) *api.Duration {
	v := api.NewDuration(d)
	return &v
}

func intp(n int) *int { return &n }

// BoundedResponseTime checks that every request from src to dst took at most max.
func BoundedResponseTime(src, dst string, max time.Duration) api.Check {
	return api.Check{Name: api.CheckBoundedResponseTime, Source: src, Dest: dst, MaxLatency: duration(max)}
}

// HTTPStatus checks that every request from src to dst got one of codes (0 for a reset
// connection). One code is written as a number, several as a list.
func HTTPStatus(src, dst string, codes ...int) api.Check {
	s := api.StatusCodes(codes...)
	return api.Check{Name: api.CheckHTTPStatus, Source: src, Dest: dst, Status: &s}
}

// HTTPSuccessStatus checks that every request from src to dst got a 2xx status; an empty src or
// dst means any service.
func HTTPSuccessStatus(src, dst string) api.Check {
	return api.Check{Name: api.CheckHTTPSuccessStatus, Source: src, Dest: dst}
}

// AtMostRequests checks that no request id has more than n requests from src to dst.
func AtMostRequests(src, dst string, n int) api.Check {
	return api.Check{Name: api.CheckAtMostRequests, Source: src, Dest: dst, NumRequests: intp(n)}
}

// NumRequests checks that exactly n requests went from src to dst.
func NumRequests(src, dst string, n int) api.Check {
	return api.Check{Name: api.CheckNumRequests, Source: src, Dest: dst, NumRequests: intp(n)}
}

// BoundedRetries checks that src retried each request to dst at most retries times and, when
// wait is more than 0, waited at least wait between attempts. Set ErrDelta and ByURI on the result
// for a tolerance and grouping by path.
func BoundedRetries(src, dst string, retries int, wait time.Duration) api.Check {
	c := api.Check{Name: api.CheckBoundedRetries, Source: src, Dest: dst, Retries: intp(retries)}
	if wait > 0 {
		c.WaitTime = duration(wait)
	}
	return c
}

// CircuitBreaker checks that src stops calling dst once more than closedAttempts consecutive
// requests failed, for reset, and closes again after halfOpen successful trials (0: the default,
// 1). Set HeaderPrefix and RemoveRetries on the result to narrow the records.
func CircuitBreaker(src, dst string, closedAttempts int, reset time.Duration, halfOpen int) api.Check {
	c := api.Check{Name: api.CheckCircuitBreaker, Source: src, Dest: dst, ClosedAttempts: intp(closedAttempts), ResetTime: duration(reset)}
	if halfOpen > 0 {
		c.HalfOpenAttempts = intp(halfOpen)
	}
	return c
}

// Bulkhead checks that src keeps calling its other dependencies at least rate times a second
// while slowDest is slow. Without dependencies, they come from the topology (EvalOptions) or the
// records.
func Bulkhead(src, slowDest string, rate float64, dependencies ...string) api.Check {
	c := api.Check{Name: api.CheckBulkhead, Source: src, SlowDest: slowDest, Rate: &rate}
	if len(dependencies) > 0 {
		c.Dependencies = dependencies
	}
	return c
}

// NoProxyErrors checks that no recorded request failed in a proxy (NR, UH, UF, UO, URX, UT, UC).
// Set Source and Dest on the result to narrow it.
func NoProxyErrors() api.Check {
	return api.Check{Name: api.CheckNoProxyErrors}
}

func probp(p float64) *float64 {
	if p == 0 {
		return nil // the default
	}
	return &p
}

// DelayRequests delays requests from src to dst by d with probability p. An empty src means
// every caller of dst, an empty dst every service src calls; d 0 means the default 1s and p 0 the
// default 1.
func DelayRequests(src, dst string, d time.Duration, p float64) api.Gremlin {
	g := api.Gremlin{Scenario: api.ScenarioDelayRequests, Source: src, Dest: dst, DelayProbability: probp(p)}
	if d != 0 {
		g.DelayTime = d.String()
	}
	return g
}

// AbortRequests answers requests from src to dst with code (below 100: the connection is reset)
// with probability p (0: the default, 1). An empty src means every caller of dst, an empty dst
// every service src calls.
func AbortRequests(src, dst string, code int, p float64) api.Gremlin {
	return api.Gremlin{Scenario: api.ScenarioAbortRequests, Source: src, Dest: dst, ErrorCode: intp(code), AbortProbability: probp(p)}
}

// PartitionServices cuts a and b apart: requests between them, both ways, have their connection
// reset. Set SrcProbability, DstProbability or ErrorCode on the result to change that.
func PartitionServices(a, b string) api.Gremlin {
	return api.Gremlin{Scenario: api.ScenarioPartitionServices, Source: a, Dest: b}
}

// CrashService makes dst look crashed to every caller: their connections are reset.
func CrashService(dst string) api.Gremlin {
	return api.Gremlin{Scenario: api.ScenarioCrashService, Dest: dst}
}

// OverloadService makes dst look overloaded to src (every caller when src is empty): half the
// requests are delayed 10s, half answered 503 (each drawn on its own). Set DelayTime,
// DelayProbability, ErrorCode or AbortProbability on the result to change that.
func OverloadService(src, dst string) api.Gremlin {
	return api.Gremlin{Scenario: api.ScenarioOverloadService, Source: src, Dest: dst}
}
