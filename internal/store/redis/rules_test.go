package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/store/storetest"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

func newRules(t *testing.T, addr, prefix string) *redisstore.Rules {
	t.Helper()
	c, err := redisstore.NewClient(redisstore.ClientOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	s := redisstore.NewRules(c, redisstore.RulesOptions{Prefix: prefix, Recheck: time.Hour}) // wake by pub/sub alone
	t.Cleanup(func() { s.Close(); c.Close() })
	return s
}

func TestRules_Conformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.TestRules(t, func(t *testing.T) store.Rules {
		return newRules(t, srv.Addr, fmt.Sprintf("rt%d", prefixes.Add(1)))
	})
}

// Two controller replicas on one Redis: a change through one is seen by, and wakes a watch on, the other;
// concurrent changes through both are all kept.
func TestRules_Replicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRules(t, srv.Addr, "shared"), newRules(t, srv.Addr, "shared")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	woke := make(chan int64, 1)
	go func() { rev, _ := b.Wait(ctx, "ns", 0); woke <- rev }()
	time.Sleep(50 * time.Millisecond)
	rule := func(id string) api.Rule {
		return api.Rule{ID: id, Destination: "reviews", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v1"}}}}}
	}
	if _, err := a.Change(ctx, "ns", store.RuleChange{Put: []api.Rule{rule("x")}}); err != nil {
		t.Fatal(err)
	}
	if rev := <-woke; rev != 1 {
		t.Fatalf("replica b woke at %d, want 1", rev)
	}
	const writers = 100 // far more contention than the optimistic transaction wins at first try
	done := make(chan error, 2*writers)
	for i := range writers {
		go func() {
			_, err := a.Change(ctx, "ns", store.RuleChange{Put: []api.Rule{rule(fmt.Sprintf("a%d", i))}})
			done <- err
		}()
		go func() {
			_, err := b.Change(ctx, "ns", store.RuleChange{Delete: func(r *api.Rule) bool { return false }, Put: []api.Rule{rule(fmt.Sprintf("b%d", i))}})
			done <- err
		}()
	}
	for range 2 * writers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	rs, err := a.Get(ctx, "ns")
	if err != nil || len(rs.Rules) != 2*writers+1 || rs.Revision != 2*writers+1 {
		t.Fatalf("after %d concurrent changes through two replicas: %d rules at revision %d, %v", 2*writers, len(rs.Rules), rs.Revision, err)
	}
}
