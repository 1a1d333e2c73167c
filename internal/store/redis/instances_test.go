package redis_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/store"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/store/storetest"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

var prefixes atomic.Int64

func newStore(t *testing.T, addr string, prefix string, clock store.Clock) *redisstore.Instances {
	t.Helper()
	c, err := redisstore.NewClient(redisstore.ClientOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	s := redisstore.NewInstances(c, redisstore.InstancesOptions{Prefix: prefix, Clock: clock, Recheck: time.Hour}) // watches must wake by pub/sub alone
	t.Cleanup(func() {
		s.Close()
		c.Close()
	})
	return s
}

func TestInstances_Conformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.TestInstances(t, func(t *testing.T, clock store.Clock) store.Instances {
		return newStore(t, srv.Addr, fmt.Sprintf("t%d", prefixes.Add(1)), clock)
	})
}

// Two replicas on one Redis see each other's instances, and a change through one wakes a watch on
// the other.
func TestInstances_ReplicasShareStateAndWakeEachOther(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	a := newStore(t, srv.Addr, "shared", clock.Now)
	b := newStore(t, srv.Addr, "shared", clock.Now)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	in := store.Instance{ID: "i1", ServiceName: "reviews", Endpoint: store.Endpoint{Type: "http", Value: "10.0.0.1:80"}, Status: "UP", TTL: 30 * time.Second}
	if _, err := a.Register(ctx, "ns", in, -1); err != nil {
		t.Fatal(err)
	}
	l, err := b.List(ctx, "ns", "")
	if err != nil || len(l.Instances) != 1 || l.Index != 1 {
		t.Fatalf("replica b lists %+v, %v; want the instance at index 1", l, err)
	}

	woke := make(chan uint64, 1)
	go func() {
		idx, _ := b.Wait(ctx, "ns", 1)
		woke <- idx
	}()
	// Let b's waiter block before the change; it must be woken by pub/sub, not by a recheck.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := a.Deregister(ctx, "ns", "i1"); err != nil {
		t.Fatal(err)
	}
	select {
	case idx := <-woke:
		if idx != 2 {
			t.Fatalf("b woke with index %d, want 2", idx)
		}
		t.Logf("cross-replica wake took %v", time.Since(start))
	case <-ctx.Done():
		t.Fatal("a change through replica a did not wake a watch on replica b")
	}
}

// While Redis is down every operation fails with ErrUnavailable, promptly; when it is back the store
// works again without being recreated.
func TestInstances_Outage(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr, "outage", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in := store.Instance{ID: "i1", ServiceName: "reviews", Endpoint: store.Endpoint{Type: "http", Value: "10.0.0.1:80"}, Status: "UP", TTL: 30 * time.Second}

	srv.Stop()
	if _, err := s.Register(ctx, "ns", in, -1); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Register during outage = %v, want ErrUnavailable", err)
	}
	if _, err := s.List(ctx, "ns", ""); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("List during outage = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping during outage = %v, want ErrUnavailable", err)
	}

	srv.Restart(t)
	var err error
	for ctx.Err() == nil { // the pool reconnects on its own; poll, do not sleep a fixed time
		if _, err = s.Register(ctx, "ns", in, -1); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Register after Redis came back: %v", err)
	}
	if l, err := s.List(ctx, "ns", ""); err != nil || len(l.Instances) != 1 {
		t.Fatalf("List after recovery = %+v, %v", l, err)
	}
}

func BenchmarkInstances(b *testing.B) {
	srv := redistest.Start(b)
	storetest.BenchmarkInstances(b, func(b *testing.B) store.Instances {
		c, err := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
		if err != nil {
			b.Fatal(err)
		}
		s := redisstore.NewInstances(c, redisstore.InstancesOptions{Prefix: fmt.Sprintf("b%d", prefixes.Add(1))})
		b.Cleanup(func() { s.Close(); c.Close() })
		return s
	})
}

// When Redis loses its data (restart without persistence, failover to an empty replica) the index
// goes back to 0. A watch at the new index must block until the next change, not spin.
func TestInstances_IndexGoesBackwards(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr, "regress", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := store.Instance{ID: "i1", ServiceName: "reviews", Endpoint: store.Endpoint{Type: "http", Value: "10.0.0.1:80"}, Status: "UP", TTL: 30 * time.Second}
	for i := range 5 {
		in.Tags = []string{fmt.Sprint(i)}
		if _, err := s.Register(ctx, "ns", in, -1); err != nil {
			t.Fatal(err)
		}
	}
	if idx, err := s.Wait(ctx, "ns", 0); err != nil || idx != 5 {
		t.Fatalf("Wait = %d, %v; want 5", idx, err)
	}
	c, _ := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
	defer c.Close()
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// The watcher learns the new index (0) once...
	if idx, err := s.Wait(ctx, "ns", 5); err != nil || idx != 0 {
		t.Fatalf("Wait after the data loss = %d, %v; want 0", idx, err)
	}
	// ...and then waits at it instead of returning at once forever.
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	if idx, err := s.Wait(wctx, "ns", 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait at the new index returned %d, %v at once; want it to block", idx, err)
	}
	woke := make(chan uint64, 1)
	go func() { idx, _ := s.Wait(ctx, "ns", 0); woke <- idx }()
	time.Sleep(50 * time.Millisecond)
	if _, err := s.Register(ctx, "ns", in, -1); err != nil {
		t.Fatal(err)
	}
	if idx := <-woke; idx != 1 {
		t.Fatalf("woke at %d, want 1", idx)
	}
}

// Errors that are not about reaching Redis are not reported as "unavailable" (which clients retry).
func TestInstances_ErrorClassification(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr, "cls", nil)
	c, _ := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
	defer c.Close()
	ctx := context.Background()
	// Sabotage: a key of the wrong type where the store keeps its index.
	if err := c.HSet(ctx, "cls:registry:{ns}:index", "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Wait(ctx, "ns", 0)
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("WRONGTYPE reply classified as %v; want a plain error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.List(cctx, "ns", ""); !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("List with a cancelled context = %v; want context.Canceled", err)
	}
}
