package health

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// interval is the check interval of the Monitor tests.
const interval = 20 * time.Millisecond

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv reads one value from ch, failing the test if none comes within 5s.
func recv(t *testing.T, ch <-chan bool, what string) bool {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no update on Updates() within 5s (waiting for %s)", what)
		return false
	}
}

// noUpdate fails the test if a value is pending on ch.
func noUpdate(t *testing.T, ch <-chan bool) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected update %v", v)
	default:
	}
}

// startMonitor runs m until the test ends, and checks that Run returns then.
func startMonitor(t *testing.T, m *Monitor) (cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Monitor.Run did not return within 5s of cancellation")
		}
	})
	return cancel
}

// statusServer answers with the status held in code.
func statusServer(t *testing.T, code *atomic.Int32, requests *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests != nil {
			requests.Add(1)
		}
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestMonitorUnhealthyUntilAllPassed(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(ok.Close)
	release := make(chan struct{})
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(gate.Close)

	m, err := NewMonitor([]Check{
		{Type: TypeHTTP, Value: ok.URL, Interval: interval},
		{Type: TypeHTTP, Value: gate.URL, Interval: interval},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Healthy() {
		t.Fatal("Healthy() before Run = true, want false")
	}
	startMonitor(t, m)

	waitFor(t, 5*time.Second, "the first check to pass", func() bool { return m.Status()[0].Healthy })
	if m.Healthy() {
		t.Fatal("Healthy() = true while the second check has not run yet")
	}
	if st := m.Status()[1]; !st.At.IsZero() || st.Healthy {
		t.Fatalf("Status()[1] = %+v, want not run yet", st)
	}
	noUpdate(t, m.Updates()) // the aggregate is not known yet

	close(release)
	if !recv(t, m.Updates(), "healthy") {
		t.Fatal("first update = false, want true")
	}
	if !m.Healthy() {
		t.Fatal("Healthy() = false after every check passed")
	}
}

func TestMonitorFailureAndRecovery(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusOK)
	srv := statusServer(t, &code, nil)
	ln := listen(t)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	m, err := NewMonitor([]Check{
		{Type: TypeHTTP, Value: srv.URL + "/health", Interval: interval},
		{Type: TypeTCP, Value: ln.Addr().String(), Interval: interval},
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	startMonitor(t, m)

	if !recv(t, m.Updates(), "initial healthy") {
		t.Fatal("first update = false, want true")
	}
	if !m.Healthy() {
		t.Fatal("Healthy() = false after the healthy update")
	}

	code.Store(http.StatusServiceUnavailable)
	if recv(t, m.Updates(), "unhealthy") {
		t.Fatal("update after the check started failing = true, want false")
	}
	if m.Healthy() {
		t.Fatal("Healthy() = true while a check fails")
	}
	st := m.Status()
	want := "GET " + srv.URL + "/health: status 503, want 200"
	if st[0].Healthy || st[0].Err != want {
		t.Fatalf("Status()[0] = %+v, want failing with %q", st[0], want)
	}
	if !st[1].Healthy {
		t.Fatalf("Status()[1] = %+v, want healthy", st[1])
	}
	waitFor(t, 5*time.Second, "the failure to be logged", func() bool {
		return strings.Contains(logs.String(), "level=INFO msg=\"health checks fail\"") && strings.Contains(logs.String(), want)
	})

	code.Store(http.StatusOK)
	if !recv(t, m.Updates(), "recovered") {
		t.Fatal("update after recovery = false, want true")
	}
	if !m.Healthy() {
		t.Fatal("Healthy() = false after recovery")
	}
	if !strings.Contains(logs.String(), "all health checks pass") {
		t.Fatalf("recovery not logged; logs:\n%s", logs)
	}
	if strings.Contains(logs.String(), "level=DEBUG") {
		t.Fatal("debug lines logged at info level")
	}
}

func TestMonitorLogsEachRunAtDebug(t *testing.T) {
	ln := listen(t)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := NewMonitor([]Check{{Type: TypeTCP, Value: ln.Addr().String(), Interval: interval}}, logger)
	if err != nil {
		t.Fatal(err)
	}
	startMonitor(t, m)
	waitFor(t, 5*time.Second, "two runs logged at debug", func() bool {
		return strings.Count(logs.String(), `level=DEBUG msg="health check ran" check="tcp `+ln.Addr().String()+`" healthy=true`) >= 2
	})
}

// TestMonitorUpdatesNeverBlock runs a flapping check with nobody reading Updates: the monitor keeps
// running, and the reader then gets the latest state.
func TestMonitorUpdatesNeverBlock(t *testing.T) {
	var flapping atomic.Bool
	flapping.Store(true)
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		if flapping.Load() && n%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)

	m, err := NewMonitor([]Check{{Type: TypeHTTP, Value: srv.URL, Interval: time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	startMonitor(t, m)

	// Every run changes the aggregate; a monitor blocked on Updates would stop after two runs.
	waitFor(t, 10*time.Second, "30 runs of the flapping check", func() bool { return requests.Load() >= 30 })

	flapping.Store(false)
	switched := time.Now()
	// Runs of one check are sequential: once a run that started after the switch is recorded, every
	// later run passes too, so the state is final.
	waitFor(t, 5*time.Second, "a passing run after the switch", func() bool {
		st := m.Status()[0]
		return st.At.After(switched) && st.Healthy
	})
	if !m.Healthy() {
		t.Fatal("Healthy() = false after the check stopped flapping")
	}
	if !recv(t, m.Updates(), "latest state") {
		t.Fatal("Updates() delivered false, want the latest state true")
	}
	noUpdate(t, m.Updates())
}

func TestMonitorStatus(t *testing.T) {
	ln := listen(t)
	checks := []Check{
		{Type: TypeTCP, Value: "tcp://" + ln.Addr().String(), Interval: interval},
		{Type: TypeFile, Value: "/bin/false", Interval: interval},
	}
	m, err := NewMonitor(checks, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range m.Status() {
		if !st.At.IsZero() || st.Healthy || st.Err != "" || st.Check.Value != checks[i].WithDefaults().Value {
			t.Fatalf("Status()[%d] before Run = %+v, want a check not run yet", i, st)
		}
	}
	startMonitor(t, m)
	waitFor(t, 5*time.Second, "both checks to run", func() bool {
		st := m.Status()
		return !st[0].At.IsZero() && !st[1].At.IsZero()
	})
	st := m.Status()
	if len(st) != 2 {
		t.Fatalf("len(Status()) = %d, want 2", len(st))
	}
	if !st[0].Healthy || st[0].Err != "" || st[0].Check.Value != ln.Addr().String() || st[0].Check.Interval != interval || st[0].Check.Timeout != DefaultTimeout {
		t.Errorf("Status()[0] = %+v, want healthy tcp check with defaults", st[0])
	}
	if st[1].Healthy || st[1].Err != "file /bin/false: exit status 1, want 0" {
		t.Errorf("Status()[1] = %+v, want failing with exit status 1", st[1])
	}
	if m.Healthy() {
		t.Error("Healthy() = true with a failing check")
	}
	if recv(t, m.Updates(), "unhealthy") {
		t.Error("update = true, want false")
	}
	// Status returns a copy.
	st[0].Healthy = false
	if !m.Status()[0].Healthy {
		t.Error("modifying Status()'s result changed the monitor")
	}
}

// TestMonitorRunReturnsAfterCancel cancels the monitor while a slow command runs: Run returns
// promptly and the cut-short run is not recorded as a failure.
func TestMonitorRunReturnsAfterCancel(t *testing.T) {
	ln := listen(t)
	m, err := NewMonitor([]Check{
		{Type: TypeFile, Value: "/bin/sleep", Args: []string{"10"}, Interval: interval, Timeout: 30 * time.Second},
		{Type: TypeTCP, Value: ln.Addr().String(), Interval: interval},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	waitFor(t, 5*time.Second, "the tcp check to pass", func() bool {
		st := m.Status()[1]
		return st.Healthy
	})
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return within 3s of cancellation")
	}
	if st := m.Status()[0]; !st.At.IsZero() {
		t.Errorf("Status()[0] = %+v, want the cancelled run not recorded", st)
	}
	if m.Healthy() {
		t.Error("Healthy() = true although the sleep check never completed")
	}
	// A second Run returns at once.
	second := make(chan struct{})
	go func() { defer close(second); m.Run(context.Background()) }()
	select {
	case <-second:
	case <-time.After(3 * time.Second):
		t.Fatal("a second Run did not return at once")
	}
}

func TestMonitorNoChecks(t *testing.T) {
	m, err := NewMonitor(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Healthy() {
		t.Fatal("Healthy() with no checks = false, want true")
	}
	if !recv(t, m.Updates(), "true") {
		t.Fatal("Updates() with no checks delivered false, want true")
	}
	noUpdate(t, m.Updates())
	if st := m.Status(); len(st) != 0 {
		t.Fatalf("Status() = %+v, want empty", st)
	}
	cancel := startMonitor(t, m)
	if !m.Healthy() {
		t.Fatal("Healthy() while running with no checks = false")
	}
	cancel()
	noUpdate(t, m.Updates())
}

func TestNewMonitorValidates(t *testing.T) {
	_, err := NewMonitor([]Check{
		{Type: TypeTCP, Value: "localhost:9080"},
		{Type: TypeHTTP, Value: "http://localhost:9080/health", Code: 42},
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "check 2 of 2: health check GET http://localhost:9080/health: code 42 is not an HTTP status") {
		t.Fatalf("NewMonitor error = %v, want check 2's code reported", err)
	}
}

// A check that has never passed is retried every StartupInterval, whatever its interval: an app
// that takes a while to start is registered soon after it is ready.
func TestMonitorStartupRetriesQuickly(t *testing.T) {
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	m, err := NewMonitor([]Check{{Type: TypeHTTP, Value: srv.URL, Interval: time.Hour}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	if got := <-m.Updates(); got {
		t.Fatal("healthy before the app is up")
	}
	up.Store(true)
	select {
	case got := <-m.Updates():
		if !got {
			t.Fatal("update false")
		}
	case <-time.After(10 * StartupInterval):
		t.Fatal("a check with a 1h interval that failed at start was not retried within seconds")
	}
}
