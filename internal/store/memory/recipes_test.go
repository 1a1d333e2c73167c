package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/storetest"
)

func newTestRecipes(t testing.TB, opts store.RecipesOptions, clock store.Clock) *Recipes {
	s := NewRecipes(opts, clock)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRecipes_Conformance(t *testing.T) {
	storetest.TestRecipes(t, func(t *testing.T, opts store.RecipesOptions) store.Recipes {
		return newTestRecipes(t, opts, nil)
	})
}

func TestRecipes_TraceGroupBound(t *testing.T) {
	storetest.TestRecipesTraceGroupBound(t, newTestRecipes(t, store.RecipesOptions{}, nil), MaxTraceGroups)
}

func record(id, trace string) api.Record { return api.Record{ID: id, TraceValue: trace} }

// Retention counts from the last change, on the store's clock: an append keeps a trace group, not
// the recipe of the same id, whose only change is its creation.
func TestRecipes_RetentionByClock(t *testing.T) {
	clock := storetest.NewClock()
	s := newTestRecipes(t, store.RecipesOptions{Retention: time.Hour}, clock.Now)
	ctx := context.Background()
	if err := s.CreateRecipe(ctx, "ns", store.Recipe{ID: "r", Created: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendRecords(ctx, "ns", api.RecordBatch{Records: []api.Record{record("a", "r")}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour - time.Nanosecond)
	if _, err := s.Recipe(ctx, "ns", "r"); err != nil {
		t.Fatalf("recipe just before its retention ends: %v", err)
	}
	if err := s.AppendRecords(ctx, "ns", api.RecordBatch{Started: []api.RecordStart{{ID: "b", TraceValue: "r"}}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Nanosecond)
	if _, err := s.Recipe(ctx, "ns", "r"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("recipe a retention period after its creation: %v, want ErrNotFound", err)
	}
	if l, _ := s.ListRecipes(ctx, "ns"); len(l) != 0 {
		t.Fatalf("expired recipe listed: %+v", l)
	}
	clock.Advance(time.Hour - 2*time.Nanosecond)
	if c, _ := s.Counts(ctx, "ns", "r"); c != (store.RecordCounts{Records: 1, InFlight: 1, Changes: 2}) {
		t.Fatalf("trace group changed less than a retention period ago: %+v", c)
	}
	clock.Advance(time.Nanosecond)
	if recs, c, _ := s.Records(ctx, "ns", "r"); len(recs) != 0 || c != (store.RecordCounts{}) {
		t.Fatalf("trace group a retention period after its last change: %d records, %+v", len(recs), c)
	}
}

func tenantCount(s *Recipes) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tenants)
}

// The janitor frees what nobody reads again, namespaces included.
func TestRecipes_SweepFreesExpired(t *testing.T) {
	clock := storetest.NewClock()
	s := newTestRecipes(t, store.RecipesOptions{Retention: time.Hour}, clock.Now)
	ctx := context.Background()
	for _, ns := range []string{"a", "b", "c"} {
		if err := s.AppendRecords(ctx, ns, api.RecordBatch{Records: []api.Record{record("x", "old"), record("y", "old2")}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRecipe(ctx, "b", store.Recipe{ID: "r"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Minute)
	if err := s.AppendRecords(ctx, "c", api.RecordBatch{Records: []api.Record{record("z", "new")}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Minute)
	s.sweep()
	if n := tenantCount(s); n != 1 {
		t.Fatalf("%d namespaces after the sweep, want only c", n)
	}
	c := s.tenants["c"]
	if len(c.traces) != 1 || c.traces["new"] == nil || c.lru.Len() != 1 {
		t.Fatalf("namespace c holds %d groups (lru %d), want only the live one", len(c.traces), c.lru.Len())
	}
}

// In real time, with no reads at all, the janitor empties the store; appends and reads racing it
// (and the removal of their namespace) work throughout.
func TestRecipes_JanitorRuns(t *testing.T) {
	s := newTestRecipes(t, store.RecipesOptions{Retention: 20 * time.Millisecond}, nil)
	ctx := context.Background()
	if err := s.AppendRecords(ctx, "ns", api.RecordBatch{Records: []api.Record{record("x", "r")}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for tenantCount(s) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the janitor did not remove an expired namespace")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				b := api.RecordBatch{Records: []api.Record{record(fmt.Sprint(w, "-", i), "r")}}
				if err := s.AppendRecords(ctx, fmt.Sprint("ns", i%3), b); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Counts(ctx, fmt.Sprint("ns", i%3), "r"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func BenchmarkRecipes_AppendRecords(b *testing.B) {
	storetest.BenchmarkRecipesAppendRecords(b, func(b *testing.B) store.Recipes {
		return newTestRecipes(b, store.RecipesOptions{}, nil)
	})
}
