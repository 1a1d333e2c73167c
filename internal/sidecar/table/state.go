package table

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// EndpointState is what the proxy knows of an endpoint beyond the table: requests in flight, and
// outlier ejection. It survives table rebuilds.
type EndpointState struct {
	active       atomic.Int64 // requests in flight
	failures     atomic.Int32 // consecutive failures
	ejections    atomic.Int32 // how often it was ejected in a row (ejection time grows with it)
	ejectedUntil atomic.Int64 // unix nanoseconds; 0: not ejected

	// Conns is the proxy's pool of connections to the endpoint, kept here so that it survives
	// table rebuilds and costs one atomic load to find.
	Conns atomic.Value
}

// Active is the number of requests in flight to the endpoint.
func (s *EndpointState) Active() int64 { return s.active.Load() }

// Ejected reports whether the endpoint is ejected at now.
func (s *EndpointState) Ejected(now int64) bool {
	u := s.ejectedUntil.Load()
	return u != 0 && now < u
}

// ClusterState holds a cluster's circuit breaker counters and its round-robin position.
type ClusterState struct {
	rr       atomic.Uint64
	requests atomic.Int64 // requests in flight (max_requests)
	conns    atomic.Int64 // requests holding a connection slot (max_connections)
	pending  atomic.Int64 // requests waiting for a connection slot (max_pending_requests)
	slotFree chan struct{}
}

// ErrNoEndpoint means the cluster has no endpoint to send to: none registered, or all ejected.
var ErrNoEndpoint = errors.New("no healthy instance")

// ErrOverflow means a circuit breaker limit of the cluster is reached.
var ErrOverflow = errors.New("circuit breaker open")

// PickEndpoint chooses an endpoint by the cluster's balancer, passing over ejected endpoints and,
// if it can, avoid (the one a retry just failed on). It allocates nothing.
func (c *Cluster) PickEndpoint(avoid *Endpoint) (*Endpoint, error) {
	n := len(c.Endpoints)
	if n == 0 {
		return nil, ErrNoEndpoint
	}
	now := time.Now().UnixNano()
	usable := func(e *Endpoint) bool { return !e.State.Ejected(now) }
	var pick *Endpoint
	switch c.LBType {
	case "least_request":
		// Power of two choices: the less busy of two random endpoints.
		a, b := c.Endpoints[rand.IntN(n)], c.Endpoints[rand.IntN(n)]
		if usable(b) && b != avoid && (!usable(a) || a == avoid || b.State.active.Load() < a.State.active.Load()) {
			a = b
		}
		if usable(a) && a != avoid {
			pick = a
		}
	case "random":
		if e := c.Endpoints[rand.IntN(n)]; usable(e) && e != avoid {
			pick = e
		}
	default: // round_robin
		if e := c.Endpoints[int(c.State.rr.Add(1)%uint64(n))]; usable(e) && e != avoid {
			pick = e
		}
	}
	if pick != nil {
		return pick, nil
	}
	// The first choice was out: scan from a random start for one that is usable, avoid last.
	start := rand.IntN(n)
	var fallback *Endpoint
	for i := range n {
		e := c.Endpoints[(start+i)%n]
		if !usable(e) {
			continue
		}
		if e != avoid {
			return e, nil
		}
		fallback = e
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, ErrNoEndpoint
}

// Begin accounts for a request to endpoint e of the cluster under its circuit breakers: at most
// MaxRequests in flight, at most MaxConnections holding a connection, and at most MaxPendingRequests
// waiting for one (a request beyond is refused at once with ErrOverflow). The returned func ends the
// request: call it exactly once, with whether the endpoint failed (5xx or no connection), so that
// outlier ejection can act.
func (c *Cluster) Begin(ctx context.Context, e *Endpoint) (end func(failed bool), err error) {
	l, s := &c.Limits, c.State
	if l.MaxRequests > 0 && s.requests.Add(1) > int64(l.MaxRequests) {
		s.requests.Add(-1)
		return nil, ErrOverflow
	} else if l.MaxRequests <= 0 {
		s.requests.Add(1)
	}
	if l.MaxConnections > 0 {
		if err := c.acquireConn(ctx); err != nil {
			s.requests.Add(-1)
			return nil, err
		}
	}
	e.State.active.Add(1)
	return func(failed bool) {
		e.State.active.Add(-1)
		if l.MaxConnections > 0 {
			c.releaseConn()
		}
		s.requests.Add(-1)
		c.outcome(e, failed)
	}, nil
}

func (c *Cluster) acquireConn(ctx context.Context) error {
	l, s := &c.Limits, c.State
	for {
		if n := s.conns.Add(1); n <= int64(l.MaxConnections) {
			return nil
		}
		s.conns.Add(-1)
		if s.pending.Add(1) > int64(l.MaxPendingRequests) {
			s.pending.Add(-1)
			return ErrOverflow
		}
		select {
		case <-s.slotFree:
		case <-ctx.Done():
			s.pending.Add(-1)
			return ctx.Err()
		case <-time.After(10 * time.Millisecond): // a release may have raced the wait: look again
		}
		s.pending.Add(-1)
	}
}

func (c *Cluster) releaseConn() {
	c.State.conns.Add(-1)
	select { // wake one waiter, if any
	case c.State.slotFree <- struct{}{}:
	default:
	}
}

func newClusterState() *ClusterState { return &ClusterState{slotFree: make(chan struct{}, 1)} }

// outcome feeds outlier ejection: ConsecutiveErrors failures in a row eject the endpoint for
// SleepWindow times the number of ejections in a row (capped at 10); a success resets both.
func (c *Cluster) outcome(e *Endpoint, failed bool) {
	s := e.State
	if !failed {
		if s.failures.Load() != 0 {
			s.failures.Store(0)
		}
		if s.ejections.Load() != 0 && !s.Ejected(time.Now().UnixNano()) {
			s.ejections.Store(0)
		}
		return
	}
	if c.Limits.ConsecutiveErrors <= 0 {
		return
	}
	if s.failures.Add(1) >= int32(c.Limits.ConsecutiveErrors) {
		s.failures.Store(0)
		n := min(s.ejections.Add(1), 10)
		s.ejectedUntil.Store(time.Now().Add(time.Duration(n) * c.Limits.SleepWindow).UnixNano())
		if c.OnEject != nil {
			c.OnEject(e)
		}
	}
}

// Ejected counts the cluster's endpoints that are ejected now.
func (c *Cluster) Ejected() int {
	now, n := time.Now().UnixNano(), 0
	for _, e := range c.Endpoints {
		if e.State.Ejected(now) {
			n++
		}
	}
	return n
}
