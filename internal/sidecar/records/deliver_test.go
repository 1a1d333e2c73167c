package records

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/a8fabric/a8/api"
)

// sink collects delivered batches; fail makes deliveries fail while it returns an error.
type sink struct {
	mu      sync.Mutex
	batches []api.RecordBatch
	fail    func() error
}

func (s *sink) send(_ context.Context, b api.RecordBatch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(); err != nil {
			return err
		}
	}
	s.batches = append(s.batches, b)
	return nil
}

func (s *sink) counts() (starts, recs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.batches {
		starts += len(b.Started)
		recs += len(b.Records)
	}
	return starts, recs
}

func traced(i int) *Record {
	return &Record{ID: fmt.Sprintf("id%d", i), StartTime: time.Unix(int64(i), 0).UTC(), Src: "a:", Dst: "b:v1", Status: 200,
		RequestID: fmt.Sprintf("req%d", i), TraceKey: "gremlin_recipe_id", TraceValue: "r1"}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func run(t *testing.T, d *Deliverer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func TestDeliverer_OrderAndCounts(t *testing.T) {
	s := &sink{}
	d := NewDeliverer(DelivererOptions{Send: s.send, Interval: time.Millisecond, BatchSize: 3})
	for i := range 5 {
		r := traced(i)
		d.Started(r)
		d.Ended(r)
	}
	d.Ended(&Record{ID: "untraced"}) // not traced: ignored
	run(t, d)
	waitFor(t, "every item", func() bool { st, rc := s.counts(); return st == 5 && rc == 5 })
	// Within and across batches a request's start comes before its record.
	seen := map[string]bool{}
	s.mu.Lock()
	for _, b := range s.batches {
		if len(b.Started)+len(b.Records) > 3 {
			t.Errorf("batch of %d, want at most 3", len(b.Started)+len(b.Records))
		}
		for _, st := range b.Started {
			seen[st.ID] = true
		}
		for _, r := range b.Records {
			if !seen[r.ID] {
				t.Errorf("record %s delivered before its start", r.ID)
			}
			if r.TraceValue != "r1" || r.Dst != "b:v1" || r.RequestID == "" {
				t.Errorf("record not converted whole: %+v", r)
			}
		}
	}
	s.mu.Unlock()
	if d.Delivered() != 10 || d.Dropped() != 0 || d.Queued() != 0 {
		t.Fatalf("delivered %d dropped %d queued %d", d.Delivered(), d.Dropped(), d.Queued())
	}
}

func TestDeliverer_RetriesWhileTheControllerIsAway(t *testing.T) {
	var mu sync.Mutex
	away := true
	s := &sink{fail: func() error {
		mu.Lock()
		defer mu.Unlock()
		if away {
			return errors.New("connection refused")
		}
		return nil
	}}
	d := NewDeliverer(DelivererOptions{Send: s.send, Interval: time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	run(t, d)
	for i := range 20 {
		d.Ended(traced(i))
	}
	waitFor(t, "failed attempts", func() bool { return d.Failures() >= 3 })
	if _, rc := s.counts(); rc != 0 || d.Queued() != 20 {
		t.Fatalf("while away: %d delivered, %d queued", rc, d.Queued())
	}
	mu.Lock()
	away = false
	mu.Unlock()
	waitFor(t, "delivery after the controller is back", func() bool { _, rc := s.counts(); return rc == 20 })
	if d.Dropped() != 0 {
		t.Fatalf("dropped %d", d.Dropped())
	}
}

func TestDeliverer_FullBufferDropsAndCounts(t *testing.T) {
	block := make(chan struct{})
	s := &sink{fail: func() error { <-block; return errors.New("down") }}
	d := NewDeliverer(DelivererOptions{Send: s.send, Buffer: 10, Interval: time.Millisecond})
	stop := run(t, d)
	start := time.Now()
	for i := range 100 {
		d.Ended(traced(i)) // never blocks, even with delivery stuck
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Ended blocked for %v", took)
	}
	if d.Dropped() != 90 {
		t.Fatalf("dropped %d of 100 with room for 10, want 90", d.Dropped())
	}
	close(block)
	stop()
}

func TestDeliverer_PermanentErrors(t *testing.T) {
	t.Run("refused batch is dropped", func(t *testing.T) {
		n := 0
		s := &sink{fail: func() error {
			n++
			if n == 1 {
				return &PermanentError{Err: errors.New("400 bad batch")}
			}
			return nil
		}}
		d := NewDeliverer(DelivererOptions{Send: s.send, Interval: time.Millisecond, BatchSize: 2})
		for i := range 4 {
			d.Ended(traced(i))
		}
		run(t, d)
		waitFor(t, "the rest delivered", func() bool { _, rc := s.counts(); return rc == 2 })
		if d.Dropped() != 2 {
			t.Fatalf("dropped %d, want the refused batch of 2", d.Dropped())
		}
	})
	t.Run("no records API pauses delivery", func(t *testing.T) {
		s := &sink{fail: func() error { return &PermanentError{Err: errors.New("404"), Unsupported: true} }}
		d := NewDeliverer(DelivererOptions{Send: s.send, Interval: time.Millisecond})
		d.Ended(traced(1))
		d.Ended(traced(2))
		run(t, d)
		waitFor(t, "the queue to be dropped", func() bool { return d.Dropped() == 2 && d.Queued() == 0 })
		d.Ended(traced(3)) // paused: dropped at once rather than queued for a controller without the API
		if d.Dropped() != 3 || d.Queued() != 0 {
			t.Fatalf("while paused: dropped %d queued %d", d.Dropped(), d.Queued())
		}
	})
}

// The record of a request whose start was queued is taken even with the buffer full: otherwise the
// controller would count the request in flight for ever.
func TestDeliverer_RecordOfAnnouncedStartIsKept(t *testing.T) {
	block := make(chan struct{})
	s := &sink{fail: func() error { <-block; return nil }}
	d := NewDeliverer(DelivererOptions{Send: s.send, Buffer: 2, Interval: time.Hour})
	a, b, c := traced(1), traced(2), traced(3)
	d.Started(a)
	d.Started(b)
	d.Started(c) // no room: dropped, not announced
	d.Ended(a)
	d.Ended(b)
	d.Ended(c) // its start was dropped: no room, dropped too
	if d.Queued() != 4 || d.Dropped() != 2 {
		t.Fatalf("queued %d dropped %d, want 4 and 2", d.Queued(), d.Dropped())
	}
	close(block)
	stop := run(t, d)
	stop()
	st, rc := s.counts()
	if st != 2 || rc != 2 {
		t.Fatalf("delivered %d starts and %d records, want each announced request's start and record", st, rc)
	}
}

func TestDeliverer_CutsLongFields(t *testing.T) {
	r := traced(1)
	r.Path = "/" + strings.Repeat("é", 2000)
	got := APIRecord(r)
	if len(got.Path) > 1024 || !utf8.ValidString(got.Path) || !strings.HasPrefix(r.Path, got.Path) {
		t.Fatalf("cut path: %d bytes, valid %v", len(got.Path), utf8.ValidString(got.Path))
	}
}

func TestDeliverer_FlushesAtStop(t *testing.T) {
	s := &sink{}
	d := NewDeliverer(DelivererOptions{Send: s.send, Interval: time.Hour})
	stop := run(t, d)
	for i := range 7 {
		d.Ended(traced(i))
	}
	stop()
	if _, rc := s.counts(); rc != 7 {
		t.Fatalf("delivered %d of 7 at stop", rc)
	}
}
