package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/store/storetest"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

// newRecipes returns a recipes store on its own client, and that client for inspecting Redis.
func newRecipes(t testing.TB, addr, prefix string, opts store.RecipesOptions) (*redisstore.Recipes, goredis.UniversalClient) {
	t.Helper()
	c, err := redisstore.NewClient(redisstore.ClientOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	s := redisstore.NewRecipes(c, redisstore.RecipesOptions{RecipesOptions: opts, Prefix: prefix})
	t.Cleanup(func() { s.Close(); c.Close() })
	return s, c
}

func TestRecipes_Conformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.TestRecipes(t, func(t *testing.T, opts store.RecipesOptions) store.Recipes {
		s, _ := newRecipes(t, srv.Addr, fmt.Sprintf("rc%d", prefixes.Add(1)), opts)
		return s
	})
}

func TestRecipes_TraceGroupBound(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newRecipes(t, srv.Addr, "bound", store.RecipesOptions{})
	storetest.TestRecipesTraceGroupBound(t, s, redisstore.MaxTraceGroups)
	// An evicted group leaves none of its four keys behind.
	ctx := context.Background()
	groups, err := c.ZCard(ctx, "bound:recipes:{tenant-r}:traces").Result()
	if err != nil || groups != redisstore.MaxTraceGroups {
		t.Fatalf("%d groups, %v", groups, err)
	}
	for _, kind := range []string{"records", "ids", "meta"} {
		keys, err := c.Keys(ctx, "bound:recipes:{tenant-r}:trace:*:"+kind).Result()
		if err != nil || int64(len(keys)) != groups {
			t.Fatalf("%d %s keys for %d groups, %v", len(keys), kind, groups, err)
		}
	}
}

func rec(id, trace string) api.Record { return api.Record{ID: id, TraceValue: trace} }

// The keys are those documented on Recipes. Every key of a trace group expires, and an append
// that adds something renews them; recipes and their index do not expire.
func TestRecipes_KeysAndExpiry(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newRecipes(t, srv.Addr, "layout", store.RecipesOptions{Retention: time.Hour})
	ctx := context.Background()
	if err := s.CreateRecipe(ctx, "ns", store.Recipe{ID: "r:1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRecipe(ctx, "ns", store.Recipe{ID: "gone"}); err != nil {
		t.Fatal(err)
	}
	b := api.RecordBatch{Started: []api.RecordStart{{ID: "s1", TraceValue: "r:1"}}, Records: []api.Record{rec("a", "r:1"), rec("b", "t")}}
	if err := s.AppendRecords(ctx, "ns", b); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendRecords(ctx, "ns", api.RecordBatch{Records: []api.Record{rec("g", "gone")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRecipe(ctx, "ns", "gone"); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, "layout:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{
		"layout:recipes:{ns}:recipe:r%3A1",
		"layout:recipes:{ns}:recipes",
		"layout:recipes:{ns}:trace:r%3A1:ids",
		"layout:recipes:{ns}:trace:r%3A1:inflight",
		"layout:recipes:{ns}:trace:r%3A1:meta",
		"layout:recipes:{ns}:trace:r%3A1:records",
		"layout:recipes:{ns}:trace:t:ids",
		"layout:recipes:{ns}:trace:t:meta",
		"layout:recipes:{ns}:trace:t:records",
		"layout:recipes:{ns}:traces",
	}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("keys:\n got %q\nwant %q", keys, want)
	}
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, "}:recipe") { // the recipe keys and the index
			if ttl != -1 {
				t.Fatalf("key %s: TTL %v; recipes are kept until deleted", k, ttl)
			}
		} else if ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("key %s: TTL %v; want about the retention period", k, ttl)
		}
	}
	if ids, _ := c.ZRangeWithScores(ctx, "layout:recipes:{ns}:trace:r%3A1:ids", 0, -1).Result(); fmt.Sprint(ids) != "[{1 a}]" {
		t.Fatalf("ids of trace r:1: %v, want a with arrival number 1", ids)
	}
	// An append that adds something refreshes the expiry of its trace group's keys, and of the
	// group index; one that adds nothing writes nothing.
	group := []string{"layout:recipes:{ns}:trace:r%3A1:records", "layout:recipes:{ns}:trace:r%3A1:inflight",
		"layout:recipes:{ns}:trace:r%3A1:meta", "layout:recipes:{ns}:trace:r%3A1:ids", "layout:recipes:{ns}:traces"}
	for _, k := range group {
		c.PExpire(ctx, k, 5*time.Second)
	}
	if err := s.AppendRecords(ctx, "ns", b); err != nil { // resent
		t.Fatal(err)
	}
	for _, k := range group {
		if ttl, err := c.PTTL(ctx, k).Result(); err != nil || ttl > 5*time.Second {
			t.Fatalf("key %s after a resend: TTL %v, %v; want it untouched", k, ttl, err)
		}
	}
	if err := s.AppendRecords(ctx, "ns", api.RecordBatch{Started: []api.RecordStart{{ID: "s2", TraceValue: "r:1"}}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range group {
		if ttl, err := c.PTTL(ctx, k).Result(); err != nil || ttl <= 59*time.Minute {
			t.Fatalf("key %s after an append: TTL %v, %v; want the retention period again", k, ttl, err)
		}
	}
}

// The ids zset is trimmed with the records list: it holds the ids of the records kept, no others,
// and a resend of a trimmed record's id keeps it again.
func TestRecipes_IDsAreTrimmedWithRecords(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newRecipes(t, srv.Addr, "ids", store.RecipesOptions{MaxRecords: 3})
	ctx := context.Background()
	for i := range 5 {
		b := api.RecordBatch{Records: []api.Record{rec(fmt.Sprint("x", 2*i), "r"), rec(fmt.Sprint("x", 2*i+1), "r")}}
		if err := s.AppendRecords(ctx, "ns", b); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := c.ZRangeWithScores(ctx, "ids:recipes:{ns}:trace:r:ids", 0, -1).Result()
	if err != nil || fmt.Sprint(ids) != "[{8 x7} {9 x8} {10 x9}]" {
		t.Fatalf("ids: %v, %v; want x7..x9, the records kept, with their arrival numbers", ids, err)
	}
	if err := s.AppendRecords(ctx, "ns", api.RecordBatch{Records: []api.Record{rec("x0", "r"), rec("x9", "r")}}); err != nil {
		t.Fatal(err)
	}
	recs, cnt, err := s.Records(ctx, "ns", "r")
	if err != nil || cnt != (store.RecordCounts{Records: 3, Dropped: 8, Changes: 6}) || recs[0].ID != "x8" || recs[2].ID != "x0" {
		t.Fatalf("after resending a trimmed id: %+v, %v", cnt, err)
	}
	if n, _ := c.ZCard(ctx, "ids:recipes:{ns}:trace:r:ids").Result(); n != 3 {
		t.Fatalf("%d ids for 3 records", n)
	}
}

// A recipe key gone from under the index (evicted by maxmemory) does not count against
// MaxRecipes, and an index key left with a TTL (by a version whose recipes expired) loses it.
func TestRecipes_IndexRepair(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newRecipes(t, srv.Addr, "idx", store.RecipesOptions{MaxRecipes: 2})
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := s.CreateRecipe(ctx, "ns", store.Recipe{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRecipe(ctx, "ns", store.Recipe{ID: "c"}); !errors.Is(err, store.ErrCapacity) {
		t.Fatalf("third recipe with MaxRecipes 2: %v", err)
	}
	c.Del(ctx, "idx:recipes:{ns}:recipe:a")
	c.PExpire(ctx, "idx:recipes:{ns}:recipes", time.Hour)
	if err := s.CreateRecipe(ctx, "ns", store.Recipe{ID: "c"}); err != nil {
		t.Fatalf("CreateRecipe after a recipe key vanished: %v", err)
	}
	if ttl, _ := c.PTTL(ctx, "idx:recipes:{ns}:recipes").Result(); ttl != -1 {
		t.Fatalf("index TTL %v after a create, want none", ttl)
	}
	if l, _ := s.ListRecipes(ctx, "ns"); len(l) != 2 {
		t.Fatalf("ListRecipes: %+v", l)
	}
}

// countingHook counts the commands and pipelines sent to Redis, each one round trip, but for those
// that set up a new connection (HELLO, CLIENT SETINFO), which the pool may dial at any time.
type countingHook struct{ n atomic.Int64 }

func connSetup(cmd goredis.Cmder) bool { return cmd.Name() == "hello" || cmd.Name() == "client" }

func (h *countingHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *countingHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if !connSetup(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if len(cmds) > 0 && !connSetup(cmds[0]) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// An append is one round trip, whatever the batch holds; so are Counts and Records.
func TestRecipes_OneRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newRecipes(t, srv.Addr, "trips", store.RecipesOptions{})
	ctx := context.Background()
	batch := func(i int) api.RecordBatch {
		var b api.RecordBatch
		for j := range 100 {
			id := fmt.Sprint(i, "-", j)
			b.Started = append(b.Started, api.RecordStart{ID: id, TraceValue: fmt.Sprint("t", j%3)})
			b.Records = append(b.Records, rec(id, fmt.Sprint("t", j%3)))
		}
		return b
	}
	if err := s.AppendRecords(ctx, "ns", batch(0)); err != nil { // loads the script
		t.Fatal(err)
	}
	h := &countingHook{}
	c.AddHook(h)
	if err := s.AppendRecords(ctx, "ns", batch(1)); err != nil {
		t.Fatal(err)
	}
	if n := h.n.Swap(0); n != 1 {
		t.Fatalf("AppendRecords of 100 records on 3 traces took %d round trips, want 1", n)
	}
	if cnt, err := s.Counts(ctx, "ns", "t0"); err != nil || cnt.Records != 68 || cnt.InFlight != 0 {
		t.Fatalf("Counts = %+v, %v", cnt, err)
	}
	if n := h.n.Swap(0); n != 1 {
		t.Fatalf("Counts took %d round trips, want 1", n)
	}
	if _, _, err := s.Records(ctx, "ns", "t0"); err != nil {
		t.Fatal(err)
	}
	if n := h.n.Swap(0); n != 1 {
		t.Fatalf("Records took %d round trips, want 1", n)
	}
}

// While Redis is down every operation fails with ErrUnavailable, promptly.
func TestRecipes_Outage(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newRecipes(t, srv.Addr, "outage", store.RecipesOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv.Stop()
	checks := map[string]error{
		"CreateRecipe":  s.CreateRecipe(ctx, "ns", store.Recipe{ID: "r"}),
		"AppendRecords": s.AppendRecords(ctx, "ns", api.RecordBatch{Records: []api.Record{rec("a", "r")}}),
		"DeleteRecipe":  s.DeleteRecipe(ctx, "ns", "r"),
		"Ping":          s.Ping(ctx),
	}
	_, checks["Recipe"] = s.Recipe(ctx, "ns", "r")
	_, checks["ListRecipes"] = s.ListRecipes(ctx, "ns")
	_, _, checks["Records"] = s.Records(ctx, "ns", "r")
	_, checks["Counts"] = s.Counts(ctx, "ns", "r")
	for op, err := range checks {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s during an outage = %v, want ErrUnavailable", op, err)
		}
	}
}

// A reply that is not about reaching Redis is a plain error, not "unavailable".
func TestRecipes_ErrorClassification(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newRecipes(t, srv.Addr, "cls", store.RecipesOptions{})
	ctx := context.Background()
	if err := c.Set(ctx, "cls:recipes:{ns}:trace:r:records", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	err := s.AppendRecords(ctx, "ns", api.RecordBatch{Records: []api.Record{rec("a", "r")}})
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("AppendRecords onto a key of the wrong type = %v; want a plain error", err)
	}
	if _, err := s.Counts(ctx, "ns", "r"); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Counts of a key of the wrong type = %v; want a plain error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Counts(cctx, "ns", "r"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Counts with a cancelled context = %v; want context.Canceled", err)
	}
}

func BenchmarkRecipes_AppendRecords(b *testing.B) {
	srv := redistest.Start(b)
	storetest.BenchmarkRecipesAppendRecords(b, func(b *testing.B) store.Recipes {
		s, _ := newRecipes(b, srv.Addr, fmt.Sprintf("b%d", prefixes.Add(1)), store.RecipesOptions{})
		return s
	})
}
