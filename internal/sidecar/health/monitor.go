package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Monitor runs checks on their intervals and reports the aggregate state: healthy while the latest
// run of every check passed. Its methods are safe for concurrent use.
type Monitor struct {
	logger  *slog.Logger
	probers []*prober
	updates chan bool

	runOnce sync.Once

	mu      sync.Mutex
	results []Result // latest result of each check; zero until it has run
	known   bool     // the aggregate is known: every check has run, or one has failed
	healthy bool     // the aggregate, meaningful once known
}

// NewMonitor validates checks (applying their defaults) and returns a Monitor for them; call Run
// to start checking. A nil logger discards the logs. With no checks the Monitor is healthy from the
// start.
func NewMonitor(checks []Check, logger *slog.Logger) (*Monitor, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Monitor{
		logger:  logger,
		updates: make(chan bool, 1),
		results: make([]Result, len(checks)),
	}
	for i, c := range checks {
		p, err := newProber(c)
		if err != nil {
			return nil, fmt.Errorf("check %d of %d: %w", i+1, len(checks), err)
		}
		m.probers = append(m.probers, p)
	}
	if len(checks) == 0 {
		m.known, m.healthy = true, true
		m.updates <- true
	}
	return m, nil
}

// Run runs every check at once, then each again on its own interval (counted from the start of
// its previous run), until ctx ends; it returns when every check's goroutine has stopped. A run cut
// short by the end of ctx is not recorded. Run is meant to be called once; later calls return at
// once.
func (m *Monitor) Run(ctx context.Context) {
	first := false
	m.runOnce.Do(func() { first = true })
	if !first {
		m.logger.Error("health: Monitor.Run called more than once; ignoring the extra call")
		return
	}
	var wg sync.WaitGroup
	for i, p := range m.probers {
		wg.Go(func() { m.loop(ctx, i, p) })
	}
	wg.Wait()
	for _, p := range m.probers {
		p.close()
	}
}

// StartupInterval is how often a check that has never passed runs, when its interval is longer:
// an app still starting is registered within a second of being ready, not a whole interval later.
const StartupInterval = time.Second

// loop runs check i until ctx ends.
func (m *Monitor) loop(ctx context.Context, i int, p *prober) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	passed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		r := p.run(ctx)
		if ctx.Err() != nil {
			return
		}
		m.record(i, r)
		passed = passed || r.Healthy
		interval := p.check.Interval
		if !passed {
			interval = min(interval, StartupInterval)
		}
		timer.Reset(max(0, interval-time.Since(r.At)))
	}
}

// record stores the result of check i, recomputes the aggregate and publishes it if it changed.
func (m *Monitor) record(i int, r Result) {
	m.logger.Debug("health check ran", "check", r.Check.String(), "healthy", r.Healthy,
		"duration", r.Duration, "error", r.Err)

	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.results[i]
	m.results[i] = r

	all, failed := true, false
	for _, res := range m.results {
		if res.At.IsZero() {
			all = false
		} else if !res.Healthy {
			failed = true
		}
	}
	known := all || failed
	healthy := all && !failed
	if !known {
		return
	}
	if m.known && healthy == m.healthy {
		// The aggregate did not change; say so if this check changed while others keep it unhealthy.
		if !prev.At.IsZero() && prev.Healthy != r.Healthy {
			if r.Healthy {
				m.logger.Info("health check passes again; other checks still fail", "check", r.Check.String(),
					"failing", m.failingLocked())
			} else {
				m.logger.Info("health check fails", "check", r.Check.String(), "error", r.Err,
					"failing", m.failingLocked())
			}
		}
		return
	}
	m.known, m.healthy = true, healthy
	if healthy {
		m.logger.Info("all health checks pass", "checks", len(m.results))
	} else {
		m.logger.Info("health checks fail", "failing", m.failingLocked())
	}
	// Latest value wins: replace an unread value, so that a slow reader never blocks the monitor.
	// Only record sends, under m.mu, so after the drain the send always finds room.
	select {
	case <-m.updates:
	default:
	}
	select {
	case m.updates <- healthy:
	default:
	}
}

// failingLocked describes the failing checks and why, e.g.
// "GET http://localhost:9080/health: status 503, want 200". m.mu must be held.
func (m *Monitor) failingLocked() string {
	var reasons []string
	for _, r := range m.results {
		if !r.At.IsZero() && !r.Healthy {
			reasons = append(reasons, r.Err)
		}
	}
	return strings.Join(reasons, "; ")
}

// Healthy reports whether every check passed its latest run; false until every check has run once.
// With no checks it is always true.
func (m *Monitor) Healthy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.known && m.healthy
}

// Updates delivers the aggregate health each time it changes, and the first time it is known
// (when every check has run once, or as soon as one fails). The channel has a buffer of one and the
// latest value wins: an unread value is replaced by a newer one, so a slow reader never blocks the
// monitor and always reads the latest state. The channel is never closed.
func (m *Monitor) Updates() <-chan bool {
	return m.updates
}

// Status returns the latest result of every check, in the order given to NewMonitor; the Result
// of a check that has not run yet is zero except for its Check.
func (m *Monitor) Status() []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Result, len(m.results))
	for i, r := range m.results {
		if r.At.IsZero() {
			r = Result{Check: m.probers[i].check}
		}
		out[i] = r
	}
	return out
}
