package records

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func rec(i int, src, dst string) *Record {
	return &Record{StartTime: time.Unix(1000+int64(i), 0).UTC(), Src: src, Dst: dst, Method: "GET", Path: fmt.Sprintf("/p%d", i), Status: 200}
}

func TestRecord_JSON(t *testing.T) {
	r := &Record{StartTime: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), RequestTime: 12.5, UpstreamResponseTime: 10, Status: 503,
		Src: "reviews:version=v2", Dst: "ratings:version=v1", Method: "GET", Path: "/ratings/0", RequestID: "abc",
		ResponseFlags: "UF", Attempts: 3, TraceKey: "gremlin_recipe_id", TraceValue: "r-1"}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	for k, want := range map[string]any{"status": 503.0, "request_time": 12.5, "upstream_response_time": 10.0, "src": "reviews:version=v2",
		"dst": "ratings:version=v1", "gremlin_recipe_id": "r-1", "message": "GET /ratings/0 503", "module": "A8", "attempts": 3.0,
		"start_time": "2026-01-02T03:04:05.006Z", "request_id": "abc", "response_flags": "UF"} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v (in %s)", k, m[k], want, data)
		}
	}
	if _, ok := m["TraceKey"]; ok {
		t.Errorf("internal fields leaked: %s", data)
	}
}

func TestRing(t *testing.T) {
	g := NewRing(3)
	for i := range 5 {
		g.Add(rec(i, "productpage:version=v1", []string{"reviews:version=v1", "reviews:version=v2"}[i%2]))
	}
	all := g.Query(Filter{})
	if len(all) != 3 || all[0].Path != "/p2" || all[2].Path != "/p4" {
		t.Fatalf("ring keeps the newest 3, oldest first: %v", paths(all))
	}
	if got := paths(g.Query(Filter{Dst: "reviews:version=v2"})); got != "/p3" {
		t.Fatalf("dst filter: %s", got)
	}
	if got := paths(g.Query(Filter{Dst: "reviews", Src: "productpage"})); got != "/p2,/p3,/p4" {
		t.Fatalf("name filters match any tags: %s", got)
	}
	if got := paths(g.Query(Filter{Since: time.Unix(1003, 0)})); got != "/p3,/p4" {
		t.Fatalf("since: %s", got)
	}
	if got := paths(g.Query(Filter{Limit: 1})); got != "/p4" {
		t.Fatalf("limit: %s", got)
	}
	r := rec(9, "a:", "b:")
	r.TraceKey, r.TraceValue = "gremlin_recipe_id", "x"
	g.Add(r)
	if got := paths(g.Query(Filter{TraceKey: "gremlin_recipe_id", TraceValue: "x"})); got != "/p9" {
		t.Fatalf("trace filter: %s", got)
	}
	if got := g.Query(Filter{TraceValue: "y"}); len(got) != 0 {
		t.Fatalf("trace value filter: %v", paths(got))
	}
}

func TestRing_Concurrent(t *testing.T) {
	g := NewRing(100)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				g.Add(rec(i, fmt.Sprint(w), ""))
				if i%100 == 0 {
					_ = g.Query(Filter{})
				}
			}
		}()
	}
	wg.Wait()
	if n := len(g.Query(Filter{})); n != 100 {
		t.Fatalf("%d records kept, want 100", n)
	}
}

func paths(rs []*Record) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Path)
	}
	return strings.Join(out, ",")
}

type slowWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	gate chan struct{}
}

func (s *slowWriter) Write(p []byte) (int, error) {
	<-s.gate
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, 10, nil)
	for i := range 5 {
		w.Write(rec(i, "a:", "b:"))
	}
	w.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 || !strings.Contains(lines[4], `"path":"/p4"`) || w.Dropped() != 0 {
		t.Fatalf("written: %q, dropped %d", buf.String(), w.Dropped())
	}
}

// A writer that cannot keep up drops records rather than holding up requests.
func TestWriter_DropsWhenBehind(t *testing.T) {
	sw := &slowWriter{gate: make(chan struct{})}
	w := NewWriter(sw, 4, nil)
	start := time.Now()
	for i := range 100 {
		w.Write(rec(i, "a:", "b:"))
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Write blocked on a stuck writer")
	}
	if w.Dropped() < 90 {
		t.Fatalf("dropped %d of 100 with room for 4", w.Dropped())
	}
	close(sw.gate)
	w.Close()
}

// A request finishing after shutdown must not crash on a closed writer.
func TestWriter_WriteAfterClose(t *testing.T) {
	w := NewWriter(io.Discard, 4, nil)
	w.Close()
	w.Write(rec(1, "a:", "b:"))
	w.Close()
	if w.Dropped() != 1 {
		t.Fatalf("dropped %d", w.Dropped())
	}
}
