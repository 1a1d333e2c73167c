package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
)

// RecipesFactory returns a new, empty recipes store bounded by opts (zero fields: the defaults),
// independent of every other it returns (for Redis: a fresh key prefix). Stores expire in real time.
type RecipesFactory func(t *testing.T, opts store.RecipesOptions) store.Recipes

// TestRecipes runs the store.Recipes conformance suite against the stores newStore returns.
func TestRecipes(t *testing.T, newStore RecipesFactory) {
	tests := []struct {
		name string
		fn   func(*testing.T, RecipesFactory)
	}{
		{"CreateGetListDelete", testRecipesCRUD},
		{"RecipesAreCopies", testRecipesCopies},
		{"TenantsAreIsolated", testRecipesTenants},
		{"TraceValuesCannotCollide", testRecipesTraceNames},
		{"InFlightAndChanges", testRecipesInFlight},
		{"RoundTripIsExact", testRecipesRoundTrip},
		{"UntracedIsIgnored", testRecipesUntraced},
		{"StartAndRecordInOneBatch", testRecipesSameBatch},
		{"RecordsPerTraceAreBounded", testRecipesRecordBound},
		{"InFlightPerTraceIsBounded", testRecipesInFlightBound},
		{"Retention", testRecipesRetention},
		{"RecipesPerNamespaceAreBounded", testRecipesRecipeBound},
		{"ResentBatchIsKeptOnce", testRecipesResend},
		{"StartAfterItsRecordIsNotInFlight", testRecipesStartAfterRecord},
		{"DeleteRemovesRecords", testRecipesDeleteRecords},
		{"ConcurrentAppendsLoseNothing", testRecipesConcurrent},
		{"Ping", func(t *testing.T, newStore RecipesFactory) {
			if err := newStore(t, store.RecipesOptions{}).Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
}

const recipeNS = "tenant-r"

// recipeEpoch is a millisecond-aligned instant the suite's times start from.
var recipeEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func recipe(id string, created time.Time) store.Recipe {
	return store.Recipe{
		ID:      id,
		Created: created,
		Spec:    json.RawMessage(`{"topology":{"services":["productpage","reviews"]},"scenarios":[{"id":"` + id + `"}],"header":"X-Gremlin-ID","pattern":"` + id + `-*"}`),
		RuleIDs: []string{id + "-rule-1", id + "-rule-2"},
	}
}

func traced(id, trace string) api.Record {
	return api.Record{ID: id, StartTime: recipeEpoch, RequestTime: 1.5, UpstreamResponseTime: 1, Status: 200,
		Src: "productpage:v1", Dst: "reviews:v2", Method: "GET", Path: "/reviews/0", RequestID: "req-" + id,
		ResponseFlags: "-", Attempts: 1, TraceKey: "gremlin_recipe_id", TraceValue: trace}
}

func started(id, trace string) api.RecordStart {
	return api.RecordStart{ID: id, StartTime: recipeEpoch, Src: "productpage:v1", Dst: "reviews:v2", RequestID: "req-" + id,
		TraceKey: "gremlin_recipe_id", TraceValue: trace}
}

func startsOf(trace string, ids ...string) []api.RecordStart {
	out := make([]api.RecordStart, len(ids))
	for i, id := range ids {
		out[i] = started(id, trace)
	}
	return out
}

func recordsOf(trace string, ids ...string) []api.Record {
	out := make([]api.Record, len(ids))
	for i, id := range ids {
		out[i] = traced(id, trace)
	}
	return out
}

func seq(prefix string, from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func mustAppend(t testing.TB, s store.Recipes, ns string, b api.RecordBatch) {
	t.Helper()
	if err := s.AppendRecords(context.Background(), ns, b); err != nil {
		t.Fatalf("AppendRecords: %v", err)
	}
}

func mustCreate(t *testing.T, s store.Recipes, ns string, r store.Recipe) {
	t.Helper()
	if err := s.CreateRecipe(context.Background(), ns, r); err != nil {
		t.Fatalf("CreateRecipe(%q): %v", r.ID, err)
	}
}

func mustCounts(t *testing.T, s store.Recipes, ns, trace string) store.RecordCounts {
	t.Helper()
	c, err := s.Counts(context.Background(), ns, trace)
	if err != nil {
		t.Fatalf("Counts(%q, %q): %v", ns, trace, err)
	}
	return c
}

// mustRecords returns the records of trace, checking that their counts agree with Counts.
func mustRecords(t *testing.T, s store.Recipes, ns, trace string) ([]api.Record, store.RecordCounts) {
	t.Helper()
	recs, c, err := s.Records(context.Background(), ns, trace)
	if err != nil {
		t.Fatalf("Records(%q, %q): %v", ns, trace, err)
	}
	if recs == nil {
		t.Fatalf("Records(%q, %q) = nil, want a non-nil slice", ns, trace)
	}
	if c.Records != len(recs) {
		t.Fatalf("Records(%q, %q): %d records, counts say %d", ns, trace, len(recs), c.Records)
	}
	if c2 := mustCounts(t, s, ns, trace); c2 != c {
		t.Fatalf("trace %q: Records counts %+v, Counts %+v", trace, c, c2)
	}
	return recs, c
}

func wantCounts(t *testing.T, s store.Recipes, ns, trace string, want store.RecordCounts) {
	t.Helper()
	if got := mustCounts(t, s, ns, trace); got != want {
		t.Fatalf("trace %q in %q: counts %+v, want %+v", trace, ns, got, want)
	}
}

func recordIDs(recs []api.Record) string {
	out := make([]string, len(recs))
	for i := range recs {
		out[i] = recs[i].ID
	}
	return strings.Join(out, ",")
}

func recipeIDs(rs []store.Recipe) string {
	out := make([]string, len(rs))
	for i := range rs {
		out[i] = rs[i].ID
	}
	return strings.Join(out, ",")
}

func mustListRecipes(t *testing.T, s store.Recipes, ns string) []store.Recipe {
	t.Helper()
	rs, err := s.ListRecipes(context.Background(), ns)
	if err != nil {
		t.Fatalf("ListRecipes(%q): %v", ns, err)
	}
	if rs == nil {
		t.Fatalf("ListRecipes(%q) = nil, want a non-nil slice", ns)
	}
	return rs
}

func sameRecipe(t *testing.T, got, want store.Recipe) {
	t.Helper()
	if got.ID != want.ID || !got.Created.Equal(want.Created) || string(got.Spec) != string(want.Spec) ||
		strings.Join(got.RuleIDs, ",") != strings.Join(want.RuleIDs, ",") {
		t.Fatalf("recipe = %+v (spec %s), want %+v (spec %s)", got, got.Spec, want, want.Spec)
	}
}

func testRecipesCRUD(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	ctx := context.Background()
	if rs := mustListRecipes(t, s, recipeNS); len(rs) != 0 {
		t.Fatalf("empty store lists %d recipes", len(rs))
	}
	if _, err := s.Recipe(ctx, recipeNS, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Recipe of an unknown id = %v, want ErrNotFound", err)
	}
	if err := s.CreateRecipe(ctx, recipeNS, store.Recipe{Created: recipeEpoch}); err == nil {
		t.Fatal("CreateRecipe without an id succeeded")
	}
	r1 := recipe("r1", recipeEpoch.Add(2*time.Second+123456789))
	r2 := recipe("r2", recipeEpoch)
	a := recipe("a", recipeEpoch.Add(2*time.Second+123456789)) // created with r1: ordered by id after Created
	for _, r := range []store.Recipe{r1, r2, a} {
		mustCreate(t, s, recipeNS, r)
	}
	dup := recipe("r1", recipeEpoch.Add(time.Hour))
	dup.Spec = json.RawMessage(`{"other":true}`)
	if err := s.CreateRecipe(ctx, recipeNS, dup); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateRecipe with a taken id = %v, want ErrExists", err)
	}
	got, err := s.Recipe(ctx, recipeNS, "r1")
	if err != nil {
		t.Fatalf("Recipe(r1): %v", err)
	}
	sameRecipe(t, got, r1) // the duplicate changed nothing
	rs := mustListRecipes(t, s, recipeNS)
	if ids := recipeIDs(rs); ids != "r2,a,r1" {
		t.Fatalf("ListRecipes = %s, want r2,a,r1 (oldest first, then by id)", ids)
	}
	sameRecipe(t, rs[0], r2)
	sameRecipe(t, rs[1], a)

	if err := s.DeleteRecipe(ctx, recipeNS, "r1"); err != nil {
		t.Fatalf("DeleteRecipe(r1): %v", err)
	}
	if _, err := s.Recipe(ctx, recipeNS, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Recipe after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteRecipe(ctx, recipeNS, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteRecipe = %v, want ErrNotFound", err)
	}
	if err := s.DeleteRecipe(ctx, recipeNS, "never"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteRecipe of an unknown id = %v, want ErrNotFound", err)
	}
	if ids := recipeIDs(mustListRecipes(t, s, recipeNS)); ids != "r2,a" {
		t.Fatalf("ListRecipes after delete = %s, want r2,a", ids)
	}
	// A deleted id may be used again.
	mustCreate(t, s, recipeNS, dup)
	if got, _ := s.Recipe(ctx, recipeNS, "r1"); string(got.Spec) != `{"other":true}` {
		t.Fatalf("re-created recipe has spec %s", got.Spec)
	}
}

// The store keeps its own copies: callers changing what they passed in or got back change nothing.
func testRecipesCopies(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	ctx := context.Background()
	in := recipe("r", recipeEpoch)
	want := recipe("r", recipeEpoch)
	mustCreate(t, s, recipeNS, in)
	in.Spec[2] = 'X'
	in.RuleIDs[0] = "changed"
	got, err := s.Recipe(ctx, recipeNS, "r")
	if err != nil {
		t.Fatal(err)
	}
	sameRecipe(t, got, want)
	got.Spec[2] = 'Y'
	got.RuleIDs[1] = "changed"
	again, _ := s.Recipe(ctx, recipeNS, "r")
	sameRecipe(t, again, want)
}

func testRecipesTenants(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	ctx := context.Background()
	tenants := []string{"a", "a}:recipes", "{a}", "b c", "é", "a}:trace:r"}
	for i, ns := range tenants {
		r := recipe("r", recipeEpoch.Add(time.Duration(i)*time.Second))
		r.RuleIDs = []string{"rule-of-" + ns}
		mustCreate(t, s, ns, r)
		// Tenant i has i+1 records and one start under trace "r".
		mustAppend(t, s, ns, api.RecordBatch{Started: startsOf("r", "s-"+ns), Records: recordsOf("r", seq(ns+"-", 0, i+1)...)})
	}
	if err := s.DeleteRecipe(ctx, "a", "r"); err != nil {
		t.Fatal(err)
	}
	for i, ns := range tenants[1:] {
		i++
		got, err := s.Recipe(ctx, ns, "r")
		if err != nil || got.RuleIDs[0] != "rule-of-"+ns {
			t.Fatalf("tenant %q: recipe %+v, %v; another tenant's recipe reached it", ns, got, err)
		}
		if rs := mustListRecipes(t, s, ns); len(rs) != 1 {
			t.Fatalf("tenant %q lists %d recipes, want its 1", ns, len(rs))
		}
		recs, c := mustRecords(t, s, ns, "r")
		if want := (store.RecordCounts{Records: i + 1, InFlight: 1, Changes: 1}); c != want {
			t.Fatalf("tenant %q: counts %+v, want %+v", ns, c, want)
		}
		for _, r := range recs {
			if !strings.HasPrefix(r.ID, ns+"-") {
				t.Fatalf("tenant %q holds record %q of another tenant", ns, r.ID)
			}
		}
	}
	if _, err := s.Recipe(ctx, "a", "r"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted recipe of tenant a: %v", err)
	}
	wantCounts(t, s, "a", "r", store.RecordCounts{})
}

// Trace values that look like key names or separators are groups of their own.
func testRecipesTraceNames(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	traces := []string{"t", "t:records", "t:meta", "t}:records", "{t}", "t%3Arecords", "t inflight", "é", "traces", "recipes"}
	for i, tr := range traces {
		mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf(tr, seq(fmt.Sprint(i, "-"), 0, i+1)...)})
	}
	for i, tr := range traces {
		if c := mustCounts(t, s, recipeNS, tr); c.Records != i+1 || c.Changes != 1 {
			t.Fatalf("trace %q: counts %+v, want %d records and 1 change", tr, c, i+1)
		}
	}
}

func testRecipesInFlight(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	ctx := context.Background()
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{})
	if recs, c := mustRecords(t, s, recipeNS, "r"); len(recs) != 0 || c != (store.RecordCounts{}) {
		t.Fatalf("unknown trace: %d records, counts %+v", len(recs), c)
	}
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "s1", "s2", "s3")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{InFlight: 3, Changes: 1})
	// Repeated: still one request, and nothing new, so no change.
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "s2")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{InFlight: 3, Changes: 1})
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("r", "s1")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 1, InFlight: 2, Changes: 2})
	// Nothing added: no change.
	mustAppend(t, s, recipeNS, api.RecordBatch{})
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("", "u1"), Records: recordsOf("", "u1")})
	if err := s.AppendRecords(ctx, recipeNS, api.RecordBatch{Started: []api.RecordStart{}, Records: []api.Record{}}); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 1, InFlight: 2, Changes: 2})
	// x9's start never came (or was not delivered): it is kept all the same.
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("r", "s3", "x9", "s2")})
	recs, c := mustRecords(t, s, recipeNS, "r")
	if want := (store.RecordCounts{Records: 4, Changes: 3}); c != want {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	if ids := recordIDs(recs); ids != "s1,s3,x9,s2" {
		t.Fatalf("records %s, want s1,s3,x9,s2 (by arrival)", ids)
	}
	// Other traces were not touched.
	wantCounts(t, s, recipeNS, "other", store.RecordCounts{})
}

func testRecipesRoundTrip(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	full := api.Record{
		ID: "sidecar-7f3a:42", StartTime: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600)),
		RequestTime: 12.345, UpstreamResponseTime: 11.5, Status: 503, Src: "productpage:version=v1,zone=a",
		Dst: "reviews:version=v2", Method: "POST", Path: "/reviews/0?x=1&y=ü", Protocol: "HTTP/1.1",
		RequestID: "6f1c-…", UpstreamHost: "10.0.0.7:9080", ResponseFlags: "UF,URX", Attempts: 3,
		TraceKey: "gremlin_recipe_id", TraceValue: "r",
	}
	bare := api.Record{ID: "bare", UpstreamResponseTime: -1, TraceValue: "r"} // zero values and -1
	utc := traced("utc", "r")
	utc.StartTime = time.Date(2026, 3, 4, 5, 6, 7, 1, time.UTC)
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: []api.Record{full, bare, utc}})
	recs, _ := mustRecords(t, s, recipeNS, "r")
	want := []api.Record{full, bare, utc}
	if got, w := string(dump(recs)), string(dump(want)); got != w {
		t.Fatalf("round trip:\n got %s\nwant %s", got, w)
	}
	for i := range want {
		if !recs[i].StartTime.Equal(want[i].StartTime) {
			t.Fatalf("record %s: StartTime %v, want %v", want[i].ID, recs[i].StartTime, want[i].StartTime)
		}
	}
	if recs[0].StartTime.Nanosecond() != 123456789 {
		t.Fatalf("StartTime lost its nanoseconds: %v", recs[0].StartTime)
	}
}

func testRecipesUntraced(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	mustAppend(t, s, recipeNS, api.RecordBatch{
		Started: append(startsOf("", "u1", "u2"), started("t1", "r")),
		Records: append(recordsOf("", "u1", "u3"), traced("t2", "r")),
	})
	recs, c := mustRecords(t, s, recipeNS, "r")
	if ids := recordIDs(recs); ids != "t2" || c != (store.RecordCounts{Records: 1, InFlight: 1, Changes: 1}) {
		t.Fatalf("trace r: records %s, counts %+v; want t2 with t1 in flight", ids, c)
	}
	wantCounts(t, s, recipeNS, "", store.RecordCounts{})
	if recs, _ := mustRecords(t, s, recipeNS, ""); len(recs) != 0 {
		t.Fatalf("untraced records were kept: %s", recordIDs(recs))
	}
}

func testRecipesSameBatch(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	// a ends in the batch it began in; b ends in the next batch, with c which begins and ends there.
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "a", "b"), Records: recordsOf("r", "a")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 1, InFlight: 1, Changes: 1})
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "c"), Records: recordsOf("r", "b", "c")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 3, Changes: 2})
	// One batch across two traces: each group is changed once and sees only its own requests.
	mustAppend(t, s, recipeNS, api.RecordBatch{
		Started: []api.RecordStart{started("x1", "x"), started("y1", "y"), started("x2", "x")},
		Records: []api.Record{traced("x1", "x"), traced("y0", "y"), traced("r9", "r")},
	})
	wantCounts(t, s, recipeNS, "x", store.RecordCounts{Records: 1, InFlight: 1, Changes: 1})
	wantCounts(t, s, recipeNS, "y", store.RecordCounts{Records: 1, InFlight: 1, Changes: 1})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 4, Changes: 3})
}

func testRecipesRecordBound(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{MaxRecords: 5})
	for i := 0; i < 12; i += 4 {
		mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("r", seq("r", i, i+4)...)})
	}
	recs, c := mustRecords(t, s, recipeNS, "r")
	if ids := recordIDs(recs); ids != "r7,r8,r9,r10,r11" {
		t.Fatalf("records %s, want the newest five r7..r11", ids)
	}
	if want := (store.RecordCounts{Records: 5, Dropped: 7, Changes: 3}); c != want {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	// A single batch larger than the bound.
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("big", seq("b", 0, 8)...)})
	recs, c = mustRecords(t, s, recipeNS, "big")
	if ids := recordIDs(recs); ids != "b3,b4,b5,b6,b7" || c.Dropped != 3 {
		t.Fatalf("one batch of 8 with a bound of 5: records %s, %d dropped", ids, c.Dropped)
	}
}

func testRecipesInFlightBound(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{MaxRecords: 5})
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", seq("s", 0, 8)...)})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{InFlight: 5, Changes: 1})
	// s0..s2 were the oldest: they are no longer in flight, and their records change nothing there.
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("r", "s0", "s1", "s2")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 3, InFlight: 5, Changes: 2})
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("r", "s3", "s7")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 5, InFlight: 3, Changes: 3})
	// Added one by one, the bound holds too.
	for i := range 7 {
		mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("one", fmt.Sprint("o", i))})
	}
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("one", "o0", "o1", "o6")})
	wantCounts(t, s, recipeNS, "one", store.RecordCounts{Records: 3, InFlight: 4, Changes: 8})
}

// Retention runs in real time: a trace group not changed for the retention period is gone, and
// the recipe of the same id is not (recipes are kept until deleted). The deadline is generous; the
// test ends as soon as the groups are gone.
func testRecipesRetention(t *testing.T, newStore RecipesFactory) {
	const retention = 300 * time.Millisecond
	s := newStore(t, store.RecipesOptions{Retention: retention})
	ctx := context.Background()
	start := time.Now()
	r := recipe("r", recipeEpoch)
	mustCreate(t, s, recipeNS, r)
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "s1"), Records: recordsOf("r", "x")})
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("other", "y")})
	if time.Since(start) < retention/2 { // on a machine too slow for that, only the expiry is checked
		if c := mustCounts(t, s, recipeNS, "r"); c.Records != 1 || c.InFlight != 1 {
			t.Fatalf("counts right after appending: %+v", c)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, c := mustRecords(t, s, recipeNS, "r")
		other := mustCounts(t, s, recipeNS, "other")
		if len(recs) == 0 && c == (store.RecordCounts{}) && other == (store.RecordCounts{}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the last change (retention %v): counts %+v and %+v", time.Since(start), retention, c, other)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Twice the retention, and more, after its creation, the recipe is still there.
	for time.Since(start) < 2*retention+50*time.Millisecond {
		time.Sleep(20 * time.Millisecond)
	}
	got, err := s.Recipe(ctx, recipeNS, "r")
	if err != nil {
		t.Fatalf("Recipe %v after its creation (trace retention %v): %v; recipes are kept until deleted", time.Since(start), retention, err)
	}
	sameRecipe(t, got, r)
	if ids := recipeIDs(mustListRecipes(t, s, recipeNS)); ids != "r" {
		t.Fatalf("ListRecipes after the trace retention = %q, want r", ids)
	}
	if err := s.CreateRecipe(ctx, recipeNS, recipe("r", recipeEpoch)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateRecipe of a running recipe's id after the trace retention = %v, want ErrExists", err)
	}
	// Its trace starts afresh.
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("r", "z")})
	if c := mustCounts(t, s, recipeNS, "r"); c.Records != 1 || c.Changes != 1 || c.InFlight != 0 {
		t.Fatalf("counts of a trace appended to after its expiry: %+v", c)
	}
	if err := s.DeleteRecipe(ctx, recipeNS, "r"); err != nil {
		t.Fatalf("DeleteRecipe after the trace retention: %v", err)
	}
	if _, err := s.Recipe(ctx, recipeNS, "r"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Recipe after DeleteRecipe: %v, want ErrNotFound", err)
	}
}

// A namespace holds at most MaxRecipes recipes; the next one fails with ErrCapacity, saying how
// many are running, until one is deleted. Other namespaces, and records, do not count.
func testRecipesRecipeBound(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{MaxRecipes: 3})
	ctx := context.Background()
	for i := range 3 {
		mustCreate(t, s, recipeNS, recipe(fmt.Sprint("r", i), recipeEpoch))
	}
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: []api.Record{traced("a", "t1"), traced("a", "t2"), traced("a", "r9")}})
	err := s.CreateRecipe(ctx, recipeNS, recipe("r3", recipeEpoch))
	if !errors.Is(err, store.ErrCapacity) {
		t.Fatalf("CreateRecipe beyond MaxRecipes = %v, want ErrCapacity", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "3 recipes are running") || !strings.Contains(msg, "delete") {
		t.Fatalf("capacity error %q does not say how many are running and to delete some", msg)
	}
	if _, err := s.Recipe(ctx, recipeNS, "r3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused recipe: Recipe = %v, want ErrNotFound", err)
	}
	if ids := recipeIDs(mustListRecipes(t, s, recipeNS)); ids != "r0,r1,r2" {
		t.Fatalf("ListRecipes = %s, want r0,r1,r2", ids)
	}
	// A taken id is still ErrExists, full or not.
	if err := s.CreateRecipe(ctx, recipeNS, recipe("r1", recipeEpoch)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateRecipe of a taken id in a full namespace = %v, want ErrExists", err)
	}
	mustCreate(t, s, "other", recipe("r3", recipeEpoch))
	if err := s.DeleteRecipe(ctx, recipeNS, "r1"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, recipeNS, recipe("r3", recipeEpoch))
	if err := s.CreateRecipe(ctx, recipeNS, recipe("r4", recipeEpoch)); !errors.Is(err, store.ErrCapacity) {
		t.Fatalf("CreateRecipe beyond MaxRecipes after a delete and a create = %v, want ErrCapacity", err)
	}
	if ids := recipeIDs(mustListRecipes(t, s, recipeNS)); ids != "r0,r2,r3" {
		t.Fatalf("ListRecipes = %s, want r0,r2,r3", ids)
	}
}

// A sidecar that timed out after the store kept its batch sends it again: each record is kept once,
// and the resend changes nothing. Record ids are per trace group: the same id under another trace
// value is another record.
func testRecipesResend(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	b := api.RecordBatch{Started: startsOf("r", "a", "b", "c"), Records: recordsOf("r", "a", "b", "c")}
	mustAppend(t, s, recipeNS, b)
	want := store.RecordCounts{Records: 3, Changes: 1}
	wantCounts(t, s, recipeNS, "r", want)
	mustAppend(t, s, recipeNS, b)
	recs, c := mustRecords(t, s, recipeNS, "r")
	if ids := recordIDs(recs); ids != "a,b,c" || c != want {
		t.Fatalf("after a resend: records %s, counts %+v; want a,b,c once, counts %+v", ids, c, want)
	}
	// Part old, part new: only the new is kept, and the same id twice in one batch is kept once.
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "b", "d"), Records: recordsOf("r", "b", "d", "a", "d")})
	recs, c = mustRecords(t, s, recipeNS, "r")
	if want := (store.RecordCounts{Records: 4, Changes: 2}); recordIDs(recs) != "a,b,c,d" || c != want {
		t.Fatalf("records %s, counts %+v; want a,b,c,d, counts %+v", recordIDs(recs), c, want)
	}
	// A batch of starts alone, sent twice: the requests are in flight once, and the resend is no change.
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "e", "f")})
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "e", "f")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 4, InFlight: 2, Changes: 3})
	end := api.RecordBatch{Records: recordsOf("r", "e", "f")}
	mustAppend(t, s, recipeNS, end)
	mustAppend(t, s, recipeNS, end)
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 6, Changes: 4})
	// The same ids under another trace value, in one batch with a resend: only that group changes.
	mustAppend(t, s, recipeNS, api.RecordBatch{
		Started: []api.RecordStart{started("a", "r"), started("a", "other"), started("z", "other")},
		Records: []api.Record{traced("a", "r"), traced("a", "other"), traced("b", "r")},
	})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 6, Changes: 4})
	recs, c = mustRecords(t, s, recipeNS, "other")
	if want := (store.RecordCounts{Records: 1, InFlight: 1, Changes: 1}); recordIDs(recs) != "a" || c != want {
		t.Fatalf("trace other: records %s, counts %+v; want a, counts %+v", recordIDs(recs), c, want)
	}
}

// A start delivered in a later batch than its record does not go in flight: the group remembers the
// ids of the records it keeps.
func testRecipesStartAfterRecord(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("r", "x", "y")})
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "x")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 2, Changes: 1})
	// With a new start, and a resent record: only the new start counts.
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "y", "z"), Records: recordsOf("r", "x")})
	wantCounts(t, s, recipeNS, "r", store.RecordCounts{Records: 2, InFlight: 1, Changes: 2})
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("r", "z")})
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "z", "x", "y")})
	recs, c := mustRecords(t, s, recipeNS, "r")
	if want := (store.RecordCounts{Records: 3, Changes: 3}); recordIDs(recs) != "x,y,z" || c != want {
		t.Fatalf("records %s, counts %+v; want x,y,z, counts %+v", recordIDs(recs), c, want)
	}
}

func testRecipesDeleteRecords(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{MaxRecords: 2})
	ctx := context.Background()
	mustCreate(t, s, recipeNS, recipe("r", recipeEpoch))
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("r", "s1", "s2"), Records: recordsOf("r", "a", "b", "c")})
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("keep", "k")})
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("orphan", "o1")}) // records with no recipe
	if err := s.DeleteRecipe(ctx, recipeNS, "r"); err != nil {
		t.Fatalf("DeleteRecipe: %v", err)
	}
	if recs, c := mustRecords(t, s, recipeNS, "r"); len(recs) != 0 || c != (store.RecordCounts{}) {
		t.Fatalf("after DeleteRecipe: %d records, counts %+v", len(recs), c)
	}
	if _, err := s.Recipe(ctx, recipeNS, "r"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Recipe after DeleteRecipe: %v", err)
	}
	wantCounts(t, s, recipeNS, "keep", store.RecordCounts{Records: 1, Changes: 1})
	// A trace group without a recipe is deleted by its id too.
	if err := s.DeleteRecipe(ctx, recipeNS, "orphan"); err != nil {
		t.Fatalf("DeleteRecipe of a trace group without a recipe: %v", err)
	}
	wantCounts(t, s, recipeNS, "orphan", store.RecordCounts{})
	// A recipe without records is deleted alone.
	mustCreate(t, s, recipeNS, recipe("quiet", recipeEpoch))
	if err := s.DeleteRecipe(ctx, recipeNS, "quiet"); err != nil {
		t.Fatalf("DeleteRecipe of a recipe without records: %v", err)
	}
	// Appending after the delete starts a new group: nothing of the old one survives.
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("r", "d")})
	recs, c := mustRecords(t, s, recipeNS, "r")
	if recordIDs(recs) != "d" || c != (store.RecordCounts{Records: 1, Changes: 1}) {
		t.Fatalf("trace appended to after its delete: records %s, counts %+v", recordIDs(recs), c)
	}
}

func testRecipesConcurrent(t *testing.T, newStore RecipesFactory) {
	s := newStore(t, store.RecipesOptions{})
	const writers, batches, per = 8, 25, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each batch starts per requests and ends those the previous batch started.
			for j := 0; j <= batches; j++ {
				var b api.RecordBatch
				if j < batches {
					b.Started = startsOf("r", seq(fmt.Sprintf("w%d-%d-", w, j), 0, per)...)
				}
				if j > 0 {
					b.Records = recordsOf("r", seq(fmt.Sprintf("w%d-%d-", w, j-1), 0, per)...)
				}
				b.Records = append(b.Records, traced(fmt.Sprintf("w%d-%d", w, j), "other"))
				if err := s.AppendRecords(context.Background(), recipeNS, b); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	recs, c := mustRecords(t, s, recipeNS, "r")
	if want := (store.RecordCounts{Records: writers * batches * per, Changes: writers * (batches + 1)}); c != want {
		t.Fatalf("after concurrent appends: counts %+v, want %+v", c, want)
	}
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		if seen[r.ID] {
			t.Fatalf("record %s kept twice", r.ID)
		}
		seen[r.ID] = true
	}
	wantCounts(t, s, recipeNS, "other", store.RecordCounts{Records: writers * (batches + 1), Changes: writers * (batches + 1)})
}

// TestRecipesTraceGroupBound checks that s, an empty store, holds at most limit trace groups per
// namespace and evicts the least recently changed one first. It is not part of TestRecipes because
// the bound is the backend's, not the interface's.
func TestRecipesTraceGroupBound(t *testing.T, s store.Recipes, limit int) {
	for i := range limit {
		mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf(fmt.Sprint("g", i), "x")})
	}
	mustAppend(t, s, "other", api.RecordBatch{Records: recordsOf("g0", "x")})
	// g0 is the least recently changed until it changes again.
	mustAppend(t, s, recipeNS, api.RecordBatch{Started: startsOf("g0", "s")})
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: recordsOf("new1", "x")})
	wantCounts(t, s, recipeNS, "g1", store.RecordCounts{})
	wantCounts(t, s, recipeNS, "g0", store.RecordCounts{Records: 1, InFlight: 1, Changes: 2})
	wantCounts(t, s, recipeNS, "new1", store.RecordCounts{Records: 1, Changes: 1})
	wantCounts(t, s, recipeNS, fmt.Sprint("g", limit-1), store.RecordCounts{Records: 1, Changes: 1})
	// One batch of two new traces evicts the two least recently changed groups.
	mustAppend(t, s, recipeNS, api.RecordBatch{Records: []api.Record{traced("x", "new2"), traced("x", "new3")}})
	wantCounts(t, s, recipeNS, "g2", store.RecordCounts{})
	wantCounts(t, s, recipeNS, "g3", store.RecordCounts{})
	wantCounts(t, s, recipeNS, "g4", store.RecordCounts{Records: 1, Changes: 1})
	wantCounts(t, s, recipeNS, "new3", store.RecordCounts{Records: 1, Changes: 1})
	// Another namespace has a bound of its own.
	wantCounts(t, s, "other", "g0", store.RecordCounts{Records: 1, Changes: 1})
}

// BenchmarkRecipesAppendRecords measures AppendRecords of batches of 100 records (and their 100
// starts, as a sidecar delivers requests that began and ended within one interval), from parallel
// goroutines onto one trace value, as the sidecars of one recipe under test do. Every batch has
// ids of its own (a resent batch would only be skipped); making them is part of what is measured.
func BenchmarkRecipesAppendRecords(b *testing.B, newStore func(b *testing.B) store.Recipes) {
	s := newStore(b)
	var workers atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := workers.Add(1)
		batch := api.RecordBatch{Started: startsOf("bench", seq("", 0, 100)...), Records: recordsOf("bench", seq("", 0, 100)...)}
		suffixes := seq("-", 0, 100)
		for n := 0; pb.Next(); n++ {
			prefix := fmt.Sprintf("w%d-%d", w, n)
			for i := range batch.Records {
				id := prefix + suffixes[i]
				batch.Started[i].ID, batch.Records[i].ID = id, id
			}
			if err := s.AppendRecords(context.Background(), "bench", batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "records/s")
}
