package memory

import (
	"context"
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

// Retention counts from the last batch that added something to a trace group, on the store's
// clock; recipes never expire.
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
	if err := s.AppendRecords(ctx, "ns", api.RecordBatch{Started: []api.RecordStart{{ID: "b", TraceValue: "r"}}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour - time.Nanosecond)
	// A batch that adds nothing new does not renew the retention.
	if err := s.AppendRecords(ctx, "ns", api.RecordBatch{Records: []api.Record{record("a", "r")}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Counts(ctx, "ns", "r"); c != (store.RecordCounts{Records: 1, InFlight: 1, Changes: 2}) {
		t.Fatalf("trace group changed less than a retention period ago: %+v", c)
	}
	clock.Advance(time.Nanosecond)
	if recs, c, _ := s.Records(ctx, "ns", "r"); len(recs) != 0 || c != (store.RecordCounts{}) {
		t.Fatalf("trace group a retention period after its last change: %d records, %+v", len(recs), c)
	}
	clock.Advance(100 * time.Hour)
	s.sweep()
	if _, err := s.Recipe(ctx, "ns", "r"); err != nil {
		t.Fatalf("recipe 100 retention periods after its creation: %v; recipes are kept until deleted", err)
	}
	if l, _ := s.ListRecipes(ctx, "ns"); len(l) != 1 {
		t.Fatalf("ListRecipes: %+v, want the recipe", l)
	}
}

func tenantCount(s *Recipes) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tenants)
}

// The janitor frees the trace groups nobody reads again, and the namespaces left empty; a
// namespace with a recipe stays.
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
	if n := tenantCount(s); n != 2 {
		t.Fatalf("%d namespaces after the sweep, want b (its recipe) and c", n)
	}
	if b := s.tenants["b"]; len(b.traces) != 0 || b.lru.Len() != 0 || len(b.recipes) != 1 || b.bytes != 0 {
		t.Fatalf("namespace b holds %d groups (lru %d, %d bytes) and %d recipes, want only its recipe",
			len(b.traces), b.lru.Len(), b.bytes, len(b.recipes))
	}
	c := s.tenants["c"]
	if len(c.traces) != 1 || c.traces["new"] == nil || c.lru.Len() != 1 {
		t.Fatalf("namespace c holds %d groups (lru %d), want only the live one", len(c.traces), c.lru.Len())
	}
	checkBytes(t, s, "c")
}

// checkBytes checks that the byte counts of ns, and of each of its groups, are the sum of the sizes
// of what they keep, and that each group remembers the ids of its records and no others.
func checkBytes(t *testing.T, s *Recipes, ns string) int64 {
	t.Helper()
	s.mu.Lock()
	tn := s.tenants[ns]
	s.mu.Unlock()
	if tn == nil {
		return 0
	}
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var total int64
	for _, g := range tn.traces {
		var n int64
		kept := make([]api.Record, g.n)
		g.copyRecords(kept)
		for i := range kept {
			n += recordSize(&kept[i])
			if !g.recorded(kept[i].ID) {
				t.Fatalf("group %q does not remember the id of its record %q", g.trace, kept[i].ID)
			}
		}
		live := 0
		for id := range g.ids {
			if g.recorded(id) {
				live++
			}
		}
		if live != g.n || len(g.ids) >= 2*g.n+64 {
			t.Fatalf("group %q remembers %d ids (%d of kept records) for %d records", g.trace, len(g.ids), live, g.n)
		}
		for id := range g.inflight {
			n += startSize(id)
		}
		if n != g.bytes {
			t.Fatalf("group %q: %d bytes counted, its records and starts take %d", g.trace, g.bytes, n)
		}
		total += n
	}
	if total != tn.bytes {
		t.Fatalf("namespace %q: %d bytes counted, its groups take %d", ns, tn.bytes, total)
	}
	return total
}

// recs returns n records of trace whose ids are of one length, so that each has the same size.
func recs(trace, prefix string, from, n int) []api.Record {
	out := make([]api.Record, n)
	for i := range out {
		out[i] = record(fmt.Sprintf("%s%03d", prefix, from+i), trace)
	}
	return out
}

func appendBatch(t *testing.T, s *Recipes, ns string, b api.RecordBatch) {
	t.Helper()
	if err := s.AppendRecords(context.Background(), ns, b); err != nil {
		t.Fatal(err)
	}
}

func wantCounts(t *testing.T, s *Recipes, ns, trace string, want store.RecordCounts) {
	t.Helper()
	if c, err := s.Counts(context.Background(), ns, trace); err != nil || c != want {
		t.Fatalf("trace %q: counts %+v, %v; want %+v", trace, c, err, want)
	}
}

// Over MaxBytes, an append evicts the least recently changed groups first, never one it added to,
// and as few as it can; a batch that added nothing does not make its groups recently changed.
func TestRecipes_MaxBytesEvictsLeastRecentlyChanged(t *testing.T) {
	size := recordSize(&recs("a", "x", 0, 1)[0])
	s := newTestRecipes(t, store.RecipesOptions{MaxBytes: 10 * size}, nil)
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("a", "x", 0, 3)})
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("b", "x", 0, 3)})
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("c", "x", 0, 3)})
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("a", "x", 3, 1)}) // 10 records: at the budget
	appendBatch(t, s, "other", api.RecordBatch{Records: recs("a", "x", 0, 9)})
	if n := checkBytes(t, s, "ns"); n != 10*size {
		t.Fatalf("%d bytes counted, want %d", n, 10*size)
	}
	wantCounts(t, s, "ns", "b", store.RecordCounts{Records: 3, Changes: 1})
	// Over budget: b, the least recently changed, goes, and that is enough.
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("d", "x", 0, 2)})
	wantCounts(t, s, "ns", "b", store.RecordCounts{})
	wantCounts(t, s, "ns", "a", store.RecordCounts{Records: 4, Changes: 2})
	wantCounts(t, s, "ns", "c", store.RecordCounts{Records: 3, Changes: 1})
	wantCounts(t, s, "ns", "d", store.RecordCounts{Records: 2, Changes: 1})
	// A resend to c changes nothing: c stays the least recently changed and goes next.
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("c", "x", 0, 3)})
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("e", "x", 0, 1)}) // 10 again
	appendBatch(t, s, "ns", api.RecordBatch{Started: []api.RecordStart{{ID: "s", TraceValue: "d"}}})
	wantCounts(t, s, "ns", "c", store.RecordCounts{})
	wantCounts(t, s, "ns", "a", store.RecordCounts{Records: 4, Changes: 2})
	wantCounts(t, s, "ns", "d", store.RecordCounts{Records: 2, InFlight: 1, Changes: 2})
	wantCounts(t, s, "ns", "e", store.RecordCounts{Records: 1, Changes: 1})
	if n := checkBytes(t, s, "ns"); n != 7*size+startSize("s") {
		t.Fatalf("%d bytes counted, want %d", n, 7*size+startSize("s"))
	}
	// Another namespace has a budget of its own.
	wantCounts(t, s, "other", "a", store.RecordCounts{Records: 9, Changes: 1})
	checkBytes(t, s, "other")
}

// A group that exceeds MaxBytes alone drops its oldest records, counted in Dropped, after every
// other group is gone; several groups of one batch drop from the biggest first; starts go last.
func TestRecipes_MaxBytesDropsOldestOfTheBatchsGroups(t *testing.T) {
	size := recordSize(&recs("a", "x", 0, 1)[0])
	s := newTestRecipes(t, store.RecipesOptions{MaxBytes: 10 * size}, nil)
	ctx := context.Background()
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("s", "x", 0, 3)})
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("g", "x", 0, 15)})
	wantCounts(t, s, "ns", "s", store.RecordCounts{})
	got, c, err := s.Records(ctx, "ns", "g")
	if err != nil || c != (store.RecordCounts{Records: 10, Dropped: 5, Changes: 1}) || got[0].ID != "x005" || got[9].ID != "x014" {
		t.Fatalf("one group of 15 records in a budget of 10: counts %+v, %v, records %s..%s", c, err, got[0].ID, got[len(got)-1].ID)
	}
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("g", "x", 15, 2)})
	wantCounts(t, s, "ns", "g", store.RecordCounts{Records: 10, Dropped: 7, Changes: 2})
	// One batch of many drops all but the last ten, and gives the room of the others back.
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("h", "x", 0, 500)})
	got, c, err = s.Records(ctx, "ns", "h")
	if err != nil || c != (store.RecordCounts{Records: 10, Dropped: 490, Changes: 1}) || got[0].ID != "x490" || got[9].ID != "x499" {
		t.Fatalf("one group of 500 records in a budget of 10: counts %+v, %v", c, err)
	}
	if n := len(s.tenants["ns"].traces["h"].records); n > 64 {
		t.Fatalf("a group of 10 records holds %d slots", n)
	}
	wantCounts(t, s, "ns", "g", store.RecordCounts{})
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("g", "x", 0, 15)})
	wantCounts(t, s, "ns", "h", store.RecordCounts{})
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("g", "x", 15, 2)})
	wantCounts(t, s, "ns", "g", store.RecordCounts{Records: 10, Dropped: 7, Changes: 2})
	// Resending a dropped record keeps it again (its id was forgotten with it), dropping the oldest.
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("g", "x", 0, 1)})
	wantCounts(t, s, "ns", "g", store.RecordCounts{Records: 10, Dropped: 8, Changes: 3})
	checkBytes(t, s, "ns")

	// Two groups of one batch over budget: the bigger drops its oldest until they fit.
	appendBatch(t, s, "ns", api.RecordBatch{Records: append(recs("p", "x", 0, 8), recs("q", "x", 0, 4)...)})
	wantCounts(t, s, "ns", "g", store.RecordCounts{})
	wantCounts(t, s, "ns", "p", store.RecordCounts{Records: 6, Dropped: 2, Changes: 1})
	wantCounts(t, s, "ns", "q", store.RecordCounts{Records: 4, Changes: 1})
	if n := checkBytes(t, s, "ns"); n != 10*size {
		t.Fatalf("%d bytes counted, want %d", n, 10*size)
	}

	// Starts count too: alone over budget, the oldest go.
	st := make([]api.RecordStart, 0, 8)
	for i := range 8 {
		st = append(st, api.RecordStart{ID: fmt.Sprintf("s%03d", i), TraceValue: "t"})
	}
	s2 := newTestRecipes(t, store.RecipesOptions{MaxBytes: 5 * startSize("s000")}, nil)
	appendBatch(t, s2, "ns", api.RecordBatch{Started: st})
	wantCounts(t, s2, "ns", "t", store.RecordCounts{InFlight: 5, Changes: 1})
	checkBytes(t, s2, "ns")
	// Records go before starts: a check still waits for the requests in flight.
	s3 := newTestRecipes(t, store.RecipesOptions{MaxBytes: 2*size + 5*startSize("s000")}, nil)
	appendBatch(t, s3, "ns", api.RecordBatch{Started: st[:5]})
	appendBatch(t, s3, "ns", api.RecordBatch{Records: recs("t", "x", 0, 3)})
	wantCounts(t, s3, "ns", "t", store.RecordCounts{Records: 2, Dropped: 1, InFlight: 5, Changes: 2})
	checkBytes(t, s3, "ns")
}

// Deleting a recipe, expiry and the group bound give their bytes back.
func TestRecipes_BytesAreGivenBack(t *testing.T) {
	clock := storetest.NewClock()
	s := newTestRecipes(t, store.RecipesOptions{Retention: time.Hour}, clock.Now)
	ctx := context.Background()
	appendBatch(t, s, "ns", api.RecordBatch{Started: []api.RecordStart{{ID: "s", TraceValue: "r"}}, Records: recs("r", "x", 0, 5)})
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("o", "x", 0, 5)})
	clock.Advance(30 * time.Minute)
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("n", "x", 0, 5)})
	if err := s.DeleteRecipe(ctx, "ns", "r"); err != nil {
		t.Fatal(err)
	}
	if n := checkBytes(t, s, "ns"); n != 10*recordSize(&recs("a", "x", 0, 1)[0]) {
		t.Fatalf("%d bytes after DeleteRecipe", n)
	}
	clock.Advance(30 * time.Minute)
	s.sweep()
	if n := checkBytes(t, s, "ns"); n != 5*recordSize(&recs("a", "x", 0, 1)[0]) {
		t.Fatalf("%d bytes after the sweep", n)
	}
	for i := range MaxTraceGroups {
		appendBatch(t, s, "ns", api.RecordBatch{Records: recs(fmt.Sprint("g", i), "x", 0, 1)})
	}
	checkBytes(t, s, "ns")
}

// A group remembers the ids of the records it keeps, no more: with the MaxRecords bound, the ids
// of dropped records are forgotten.
func TestRecipes_RememberedIDsAreBounded(t *testing.T) {
	s := newTestRecipes(t, store.RecipesOptions{MaxRecords: 3}, nil)
	for i := range 200 {
		appendBatch(t, s, "ns", api.RecordBatch{Records: recs("r", "x", 2*i, 2)})
	}
	s.tenants["ns"].mu.Lock()
	g := s.tenants["ns"].traces["r"]
	n, held := len(g.ids), len(g.records)
	s.tenants["ns"].mu.Unlock()
	if n >= 2*3+64 || held != 3 {
		t.Fatalf("%d ids remembered for 3 records, %d record slots held", n, held)
	}
	checkBytes(t, s, "ns") // and only the 3 kept are recorded
	wantCounts(t, s, "ns", "r", store.RecordCounts{Records: 3, Dropped: 397, Changes: 200})
	// A dropped record's id is forgotten: its resend is kept again.
	appendBatch(t, s, "ns", api.RecordBatch{Records: recs("r", "x", 0, 1)})
	wantCounts(t, s, "ns", "r", store.RecordCounts{Records: 3, Dropped: 398, Changes: 201})
	got, _, _ := s.Records(context.Background(), "ns", "r")
	if ids := fmt.Sprint(got[0].ID, got[1].ID, got[2].ID); ids != "x398x399x000" {
		t.Fatalf("records %s, want x398 x399 x000", ids)
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
