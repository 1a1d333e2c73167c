package registry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	"github.com/a8fabric/a8/internal/store/storetest"
)

type changesAnswer struct {
	Changes   bool
	Epoch     string
	Instances []struct {
		ID   string
		Tags []string
	}
	Removed []string
	index   uint64
	raw     reply
}

func (a changesAnswer) ids() []string {
	var out []string
	for _, in := range a.Instances {
		out = append(out, in.ID)
	}
	return out
}

// changes sends a changes query: the whole list when epoch is "", else what changed since index.
func (e *env) changes(query, epoch string, index uint64, wait string) changesAnswer {
	e.t.Helper()
	path := "/api/v1/instances?changes=true" + query
	if epoch != "" {
		path += "&epoch=" + epoch + "&wait=" + wait + "&index=" + strconv.FormatUint(index, 10)
	}
	r := e.do("GET", path, "", nil)
	if r.code != http.StatusOK {
		e.t.Fatalf("changes query %s: %s", path, r)
	}
	var a changesAnswer
	r.decode(e.t, &a)
	a.raw = r
	a.index, _ = strconv.ParseUint(r.header.Get("A8-Index"), 10, 64)
	return a
}

// A changes watch: the log's whole list and its epoch first, then what changed since an index:
// instances added or changed (as they are now), and the ids of those removed or no longer matching.
func TestRegistry_ChangesWatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		keep := e.register("", reg("reviews", "h:1", with("tags", []string{"v1"})))
		gone := e.register("", reg("reviews", "h:2", with("tags", []string{"v1"})))
		moved := e.register("", reg("reviews", "h:3", with("tags", []string{"v1"})))
		e.register("", reg("reviews", "h:9", with("tags", []string{"v2"})))

		whole := e.changes("&tags=v1", "", 0, "")
		if whole.Changes || whole.Epoch == "" || strings.Join(sorted(whole.ids()), ",") != strings.Join(sorted([]string{keep, gone, moved}), ",") {
			t.Fatalf("the first changes query = %s, want the whole list of v1 and an epoch", whole.raw)
		}
		quiet := e.changes("&tags=v1", whole.Epoch, whole.index, "100ms")
		if !quiet.Changes || len(quiet.Instances) != 0 || len(quiet.Removed) != 0 || quiet.index != whole.index {
			t.Fatalf("nothing new = %s (index %d)", quiet.raw, quiet.index)
		}

		added := e.register("", reg("reviews", "h:4", with("tags", []string{"v1"})))
		if r := e.do("DELETE", "/api/v1/instances/"+gone, "", nil); r.code != http.StatusOK && r.code != http.StatusNoContent {
			t.Fatalf("deregister: %s", r)
		}
		if again := e.register("", reg("reviews", "h:3", with("tags", []string{"v2"}))); again != moved {
			t.Fatalf("re-registering h:3 gave id %s, want %s", again, moved)
		}
		var set, removed []string
		index := whole.index
		for range 10 {
			a := e.changes("&tags=v1", whole.Epoch, index, "10s")
			if !a.Changes || a.Epoch != whole.Epoch {
				t.Fatalf("answer = %s, want changes of the same log", a.raw)
			}
			set, removed, index = append(set, a.ids()...), append(removed, a.Removed...), a.index
			if slices.Contains(set, added) && slices.Contains(removed, gone) && slices.Contains(removed, moved) {
				break
			}
		}
		if !slices.Contains(set, added) || !slices.Contains(removed, gone) || !slices.Contains(removed, moved) || slices.Contains(set, keep) || slices.Contains(removed, keep) {
			t.Fatalf("changes: set %v, removed %v; want %s set, %s and %s (now v2, so not matching) removed, %s in neither", set, removed, added, gone, moved, keep)
		}

		// What the log cannot answer from gets the whole list: another epoch (another log: a
		// restarted registry, another replica), an index the log never listed.
		for _, q := range []struct {
			epoch string
			index uint64
		}{{"0123456789abcdef", index}, {whole.Epoch, index + 1000}, {whole.Epoch, 1}} {
			a := e.changes("&tags=v1", q.epoch, q.index, "1s")
			if a.Changes || a.Epoch != whole.Epoch || strings.Join(sorted(a.ids()), ",") != strings.Join(sorted([]string{keep, added}), ",") {
				t.Fatalf("changes since %d of epoch %s = %s, want the whole list (h:1 and h:4)", q.index, q.epoch, a.raw)
			}
		}
		if r := e.do("GET", "/api/v1/instances?changes=maybe", "", nil); r.code != http.StatusBadRequest || !strings.Contains(r.errorText(t), "changes") {
			t.Fatalf("changes=maybe: %s", r)
		}
	})
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// minuteStore lets the test end the change log's wait on the store as if its minute had passed
// (the log then lists again at the same index), and counts lists.
type minuteStore struct {
	store.Instances
	minute chan struct{}
	lists  atomic.Int32
}

func (s *minuteStore) Wait(ctx context.Context, ns string, after uint64) (uint64, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.minute:
			cancel()
		case <-wctx.Done():
		}
	}()
	idx, err := s.Instances.Wait(wctx, ns, after)
	if err != nil && ctx.Err() == nil {
		return idx, context.DeadlineExceeded
	}
	return idx, err
}

func (s *minuteStore) List(ctx context.Context, ns, service string) (store.InstanceList, error) {
	s.lists.Add(1)
	return s.Instances.List(ctx, ns, service)
}

// An instance whose lease ran out is hidden by the store before the reaper raises the index. A list
// the log takes in between, at the same index, must not change what that index means to watchers:
// the expiry is told once the reap raises the index.
func TestRegistry_ChangesWatchExpiryBetweenLists(t *testing.T) {
	clock := storetest.NewClock()
	ms := &minuteStore{Instances: memory.NewInstances(clock.Now), minute: make(chan struct{}, 1)}
	e := start(t, ms, clock, nil, nil)
	x := e.register("", reg("reviews", "h:1", with("ttl", 10)))
	e.register("", reg("reviews", "h:2", with("ttl", 600)))
	whole := e.changes("", "", 0, "")
	if !slices.Contains(whole.ids(), x) {
		t.Fatalf("whole list %s lacks x", whole.raw)
	}
	clock.Advance(11 * time.Second) // x's lease ran out; not reaped yet
	before := ms.lists.Load()
	ms.minute <- struct{}{} // the log's wait ends: it lists again, at the same index, without x
	deadline := time.Now().Add(10 * time.Second)
	for ms.lists.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the log did not list again")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := ms.Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := e.changes("", whole.Epoch, whole.index, "10s")
	if !a.Changes || !slices.Contains(a.Removed, x) {
		t.Fatalf("changes since %d after x expired and was reaped = %s: want x removed", whole.index, a.raw)
	}
}

// A registry started afresh (a restart) has a log of another epoch: a watcher's index from before,
// even one the new store has reached, gets the whole list, not changes.
func TestRegistry_ChangesWatchAfterRestart(t *testing.T) {
	clock := storetest.NewClock()
	old := start(t, memory.NewInstances(clock.Now), clock, nil, nil)
	for i := range 12 {
		old.register("", reg("reviews", "a:"+strconv.Itoa(i)))
	}
	was := old.changes("", "", 0, "")
	fresh := start(t, memory.NewInstances(clock.Now), clock, nil, nil)
	for i := range 14 {
		fresh.register("", reg("reviews", "b:"+strconv.Itoa(i)))
	}
	a := fresh.changes("", was.Epoch, was.index, "1s")
	if a.Changes || len(a.Instances) != 14 {
		t.Fatalf("changes since %d of the old registry's epoch = %s, want the new whole list", was.index, a.raw)
	}
}

// Close while a first changes query starts a log: no log starts once Close has begun (a WaitGroup
// Add concurrent with its Wait; run with -race).
func TestRegistry_CloseConcurrentWithChangesQuery(t *testing.T) {
	for range 100 {
		reg, err := registry.New(registry.Config{Store: memory.NewInstances(nil), Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		h := reg.Handler()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v1/instances?changes=true", nil))
		}()
		reg.Close()
		<-done
	}
}

// Redis restarted empty: the store's index starts again. A watcher holding a list from before
// follows the answers to its old index and epoch (changes, or a whole list) and ends with the new
// list: a wrong patch would leave it holding an a:* or missing a b:* for good.
func TestRegistry_ChangesWatchStoreReset(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		if e.redis == nil {
			t.Skip("the memory store is not reset while the registry runs")
		}
		for i := range 3 {
			e.register("", reg("reviews", "a:"+strconv.Itoa(i)))
		}
		was := e.changes("", "", 0, "")
		e.redis.Restart(t) // empty: no persistence
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; i < 6; {
			if time.Now().After(deadline) {
				t.Fatal("the registry did not take registrations after Redis restarted")
			}
			if r := e.do("POST", "/api/v1/instances", "", reg("reviews", "b:"+strconv.Itoa(i))); r.code != http.StatusCreated {
				time.Sleep(50 * time.Millisecond) // the registry reconnecting to Redis
				continue
			}
			i++
		}
		want := strings.Join(sorted(field(e.list("", ""), "id")), ",")
		held, index, epoch := was.ids(), was.index, was.Epoch
		var answers []string
		for strings.Join(sorted(held), ",") != want {
			if time.Now().After(deadline) {
				t.Fatalf("the watcher holds %v, want %s; answers: %s", sorted(held), want, strings.Join(answers, "\n"))
			}
			a := e.changes("", epoch, index, "200ms")
			answers = append(answers, string(a.raw.body))
			if a.Changes {
				held = slices.DeleteFunc(held, func(id string) bool { return slices.Contains(a.Removed, id) || slices.Contains(a.ids(), id) })
				held = append(held, a.ids()...)
			} else {
				held = a.ids()
			}
			index, epoch = a.index, a.Epoch
		}
	})
}
