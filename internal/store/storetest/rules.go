package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
)

// RulesFactory returns a new, empty rules store, independent of every other it returns.
type RulesFactory func(t *testing.T) store.Rules

// TestRules runs the store.Rules conformance suite against the stores newStore returns.
func TestRules(t *testing.T, newStore RulesFactory) {
	tests := []struct {
		name string
		fn   func(*testing.T, RulesFactory)
	}{
		{"PutAndGet", testRulesPutAndGet},
		{"PutReplacesByID", testRulesPutReplaces},
		{"UpdateNeedsExistingIDs", testRulesUpdateNeedsExisting},
		{"Delete", testRulesDelete},
		{"DeleteAndPutInOneChange", testRulesReplaceDestination},
		{"RevisionRisesOnEveryChange", testRulesRevision},
		{"TenantsAreIsolated", testRulesTenants},
		{"RoundTripIsExact", testRulesRoundTrip},
		{"Wait", testRulesWait},
		{"ConcurrentChangesAreSerialised", testRulesConcurrent},
		{"CheckCanRefuse", testRulesCheck},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
}

func fp(v float64) *float64 { return &v }

func routeRule(id, dest string, priority int, tags ...string) api.Rule {
	return api.Rule{ID: id, Destination: dest, Priority: priority, Tags: tags,
		Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v1"}}}}}
}

func actionRule(id, dest string) api.Rule {
	return api.Rule{ID: id, Destination: dest, Actions: []api.Action{{Action: "delay", Duration: 7, Probability: fp(0.5)}}}
}

func mustChange(t *testing.T, s store.Rules, ns string, ch store.RuleChange) int64 {
	t.Helper()
	rev, err := s.Change(context.Background(), ns, ch)
	if err != nil {
		t.Fatalf("Change: %v", err)
	}
	return rev
}

func mustGet(t *testing.T, s store.Rules, ns string) store.RuleSet {
	t.Helper()
	rs, err := s.Get(context.Background(), ns)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return rs
}

func ruleIDs(rs store.RuleSet) string {
	ids := make([]string, len(rs.Rules))
	for i, r := range rs.Rules {
		ids[i] = r.ID
	}
	return strings.Join(ids, ",")
}

func testRulesPutAndGet(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	if rs := mustGet(t, s, "ns"); len(rs.Rules) != 0 || rs.Revision != 0 {
		t.Fatalf("empty store: %+v", rs)
	}
	rev := mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{
		routeRule("r-low", "reviews", 1), routeRule("r-high", "reviews", 5), actionRule("a", "ratings"), routeRule("d", "details", 1),
	}})
	rs := mustGet(t, s, "ns")
	if rev != 1 || rs.Revision != 1 {
		t.Fatalf("revision %d / %d after one change, want 1", rev, rs.Revision)
	}
	if got := ruleIDs(rs); got != "d,a,r-high,r-low" {
		t.Fatalf("rules %s, want sorted by destination, then priority descending", got)
	}
}

func testRulesPutReplaces(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{routeRule("r", "reviews", 1)}})
	mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{routeRule("r", "reviews", 7, "changed")}})
	rs := mustGet(t, s, "ns")
	if len(rs.Rules) != 1 || rs.Rules[0].Priority != 7 || rs.Rules[0].Tags[0] != "changed" || rs.Revision != 2 {
		t.Fatalf("after replacing: %+v", rs)
	}
}

func testRulesUpdateNeedsExisting(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{routeRule("a", "reviews", 1)}})
	_, err := s.Change(context.Background(), "ns", store.RuleChange{MustExist: true,
		Put: []api.Rule{routeRule("a", "reviews", 9), routeRule("ghost", "reviews", 1), routeRule("ghost2", "x", 1)}})
	var missing *store.MissingRulesError
	if !errors.As(err, &missing) || !errors.Is(err, store.ErrNotFound) || strings.Join(missing.IDs, ",") != "ghost,ghost2" {
		t.Fatalf("update with unknown ids = %v; want MissingRulesError{ghost, ghost2}", err)
	}
	rs := mustGet(t, s, "ns")
	if rs.Revision != 1 || rs.Rules[0].Priority != 1 {
		t.Fatalf("a failed update changed something: %+v", rs)
	}
	if rev := mustChange(t, s, "ns", store.RuleChange{MustExist: true, Put: []api.Rule{routeRule("a", "reviews", 9)}}); rev != 2 {
		t.Fatalf("update revision %d, want 2", rev)
	}
	if rs := mustGet(t, s, "ns"); rs.Rules[0].Priority != 9 {
		t.Fatalf("update not applied: %+v", rs.Rules[0])
	}
}

func testRulesDelete(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{routeRule("a", "reviews", 1, "t1"), routeRule("b", "reviews", 1, "t1", "t2"), actionRule("c", "ratings")}})
	mustChange(t, s, "ns", store.RuleChange{Delete: func(r *api.Rule) bool { return len(r.Tags) == 2 }})
	if got := ruleIDs(mustGet(t, s, "ns")); got != "c,a" {
		t.Fatalf("after deleting b: %s", got)
	}
	mustChange(t, s, "ns", store.RuleChange{Delete: func(*api.Rule) bool { return true }})
	if rs := mustGet(t, s, "ns"); len(rs.Rules) != 0 || rs.Revision != 3 {
		t.Fatalf("after deleting all: %+v", rs)
	}
}

func testRulesReplaceDestination(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{routeRule("old1", "reviews", 1), routeRule("old2", "reviews", 2), actionRule("act", "reviews"), routeRule("other", "ratings", 1)}})
	mustChange(t, s, "ns", store.RuleChange{
		Delete: func(r *api.Rule) bool { return r.Destination == "reviews" && r.Route != nil },
		Put:    []api.Rule{routeRule("new", "reviews", 1), routeRule("old2", "reviews", 3)},
	})
	rs := mustGet(t, s, "ns")
	if got := ruleIDs(rs); got != "other,old2,new,act" {
		t.Fatalf("after replacing the routes of reviews: %s", got)
	}
}

func testRulesRevision(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	steps := []store.RuleChange{
		{Put: []api.Rule{routeRule("a", "reviews", 1)}},
		{MustExist: true, Put: []api.Rule{routeRule("a", "reviews", 2)}},
		{Delete: func(*api.Rule) bool { return false }}, // deletes nothing: still a change (Amalgam8)
		{Delete: func(*api.Rule) bool { return true }},
	}
	for i, ch := range steps {
		if rev := mustChange(t, s, "ns", ch); rev != int64(i+1) {
			t.Fatalf("step %d: revision %d, want %d", i, rev, i+1)
		}
	}
}

func testRulesTenants(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	for _, ns := range []string{"a", "a}:rules", "{a}", "b c", "é"} {
		mustChange(t, s, ns, store.RuleChange{Put: []api.Rule{routeRule("rule-of-"+ns, "reviews", 1)}})
	}
	mustChange(t, s, "a", store.RuleChange{Delete: func(*api.Rule) bool { return true }})
	for _, ns := range []string{"a}:rules", "{a}", "b c", "é"} {
		rs := mustGet(t, s, ns)
		if ruleIDs(rs) != "rule-of-"+ns || rs.Revision != 1 {
			t.Fatalf("tenant %q: %+v; another tenant's change reached it", ns, rs)
		}
	}
	if rs := mustGet(t, s, "a"); len(rs.Rules) != 0 || rs.Revision != 2 {
		t.Fatalf("tenant a: %+v", rs)
	}
}

func testRulesRoundTrip(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	rc, retries := -1, 0
	in := api.Rule{ID: "full", Priority: -3, Tags: []string{"x", "y"}, Destination: "reviews",
		Match: &api.Match{Source: &api.Source{Name: "productpage", Tags: []string{"version=v1"}}, Headers: map[string]string{"Cookie": "^(.*?;)?(user=jason)(;.*)?$"}},
		Route: &api.Route{Backends: []api.Backend{
			{Name: "reviews", Tags: []string{"version=v2"}, Weight: fp(0.25), LBType: "random", Resilience: &api.Resilience{MaxRequests: 10, SleepWindow: 1.5}, URI: &api.URI{Prefix: "/a", PrefixRewrite: "/b"}},
			{Tags: []string{"version=v1"}},
		}, HTTPReqTimeout: fp(2.5), HTTPReqRetries: &retries}}
	act := api.Rule{ID: "act", Destination: "ratings", Actions: []api.Action{{Action: "abort", ReturnCode: &rc, Probability: fp(0.1), Tags: []string{"version=v1"}}, {Action: "trace", LogKey: "k", LogValue: "v"}}}
	mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{in, act}})
	rs := mustGet(t, s, "ns")
	got, want := fmt.Sprintf("%s", dump(rs.Rules)), fmt.Sprintf("%s", dump([]api.Rule{act, in}))
	if got != want {
		t.Fatalf("round trip:\n got %s\nwant %s", got, want)
	}
	if rs.Rules[1].Route.Backends[1].Weight != nil || *rs.Rules[1].Route.HTTPReqRetries != 0 || *rs.Rules[0].Actions[0].ReturnCode != -1 {
		t.Fatal("unset and zero values were not kept apart")
	}
}

func testRulesWait(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{routeRule("a", "reviews", 1)}})
	for _, after := range []int64{0, 99} {
		if rev, err := s.Wait(ctx, "ns", after); err != nil || rev != 1 {
			t.Fatalf("Wait(%d) = %d, %v; want 1 at once", after, rev, err)
		}
	}
	woke := make(chan int64, 1)
	go func() { rev, _ := s.Wait(ctx, "ns", 1); woke <- rev }()
	mustChange(t, s, "other", store.RuleChange{Put: []api.Rule{routeRule("a", "reviews", 1)}})
	select {
	case rev := <-woke:
		t.Fatalf("woke at %d on another tenant's change", rev)
	case <-time.After(50 * time.Millisecond):
	}
	mustChange(t, s, "ns", store.RuleChange{Delete: func(*api.Rule) bool { return true }})
	select {
	case rev := <-woke:
		if rev != 2 {
			t.Fatalf("woke at %d, want 2", rev)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not wake on a change")
	}
	tctx, tcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer tcancel()
	if rev, err := s.Wait(tctx, "ns", 2); !errors.Is(err, context.DeadlineExceeded) || rev != 2 {
		t.Fatalf("Wait timing out = %d, %v", rev, err)
	}
}

func testRulesConcurrent(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Change(context.Background(), "ns", store.RuleChange{Put: []api.Rule{routeRule(fmt.Sprintf("r%02d", i), "reviews", i)}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rs := mustGet(t, s, "ns")
	if len(rs.Rules) != n || rs.Revision != n {
		t.Fatalf("%d rules at revision %d after %d concurrent changes", len(rs.Rules), rs.Revision, n)
	}
}

func testRulesCheck(t *testing.T, newStore RulesFactory) {
	s := newStore(t)
	mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{routeRule("a", "reviews", 1), actionRule("b", "ratings")}})
	refuse := errors.New("refused")
	var saw string
	_, err := s.Change(context.Background(), "ns", store.RuleChange{
		Put: []api.Rule{routeRule("c", "x", 1)},
		Check: func(cur []api.Rule) error {
			for _, r := range cur {
				saw += r.ID
			}
			return refuse
		},
	})
	if !errors.Is(err, refuse) || saw != "ba" {
		t.Fatalf("Change with a refusing Check = %v (Check saw %q); want the Check's error, having seen b and a", err, saw)
	}
	if rs := mustGet(t, s, "ns"); ruleIDs(rs) != "b,a" || rs.Revision != 1 {
		t.Fatalf("a refused change wrote: %+v", rs)
	}
	mustChange(t, s, "ns", store.RuleChange{Put: []api.Rule{routeRule("c", "x", 1)}, Check: func([]api.Rule) error { return nil }})
	if rs := mustGet(t, s, "ns"); rs.Revision != 2 {
		t.Fatalf("revision %d after an accepted checked change", rs.Revision)
	}
}
