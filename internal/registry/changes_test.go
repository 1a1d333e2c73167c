package registry_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/registry"
)

type changesAnswer struct {
	Changes   bool
	Instances []struct {
		ID   string
		Tags []string
	}
	Removed []string
}

func (a changesAnswer) ids() string {
	var out []string
	for _, in := range a.Instances {
		out = append(out, in.ID)
	}
	return strings.Join(out, ",")
}

// A blocking query with changes=true is answered with what changed since its index: instances
// added or changed (as they are now), and the ids of those removed or no longer matching.
func TestRegistry_ChangesWatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		keep := e.register("", reg("reviews", "h:1", with("tags", []string{"v1"})))
		gone := e.register("", reg("reviews", "h:2", with("tags", []string{"v1"})))
		moved := e.register("", reg("reviews", "h:3", with("tags", []string{"v1"})))
		full := e.do("GET", "/api/v1/instances?tags=v1", "", nil)
		index, _ := strconv.ParseUint(full.header.Get("A8-Index"), 10, 64)

		// The log starts with the first changes query: this one has nothing new and waits it out.
		quiet := e.do("GET", "/api/v1/instances?tags=v1&changes=true&wait=100ms&index="+strconv.FormatUint(index, 10), "", nil)
		var qa changesAnswer
		quiet.decode(t, &qa)
		if quiet.code != 200 || !qa.Changes || len(qa.Instances) != 0 || len(qa.Removed) != 0 || quiet.header.Get("A8-Index") != strconv.FormatUint(index, 10) {
			t.Fatalf("a changes query with nothing new = %s (index %s)", quiet, quiet.header.Get("A8-Index"))
		}

		answer := make(chan reply, 1)
		go func() {
			answer <- e.do("GET", "/api/v1/instances?tags=v1&changes=true&wait=10s&index="+strconv.FormatUint(index, 10), "", nil)
		}()
		// All three changes may land in one answer or in several: collect until all are seen.
		added := e.register("", reg("reviews", "h:4", with("tags", []string{"v1"})))
		if r := e.do("DELETE", "/api/v1/instances/"+gone, "", nil); r.code != http.StatusOK && r.code != http.StatusNoContent {
			t.Fatalf("deregister: %s", r)
		}
		if again := e.register("", reg("reviews", "h:3", with("tags", []string{"v2"}))); again != moved {
			t.Fatalf("re-registering h:3 gave id %s, want %s", again, moved)
		}
		var set, removed []string
		for r := range 10 {
			var got reply
			select {
			case got = <-answer:
			case <-time.After(10 * time.Second):
				t.Fatal("the changes query did not answer")
			}
			var a changesAnswer
			got.decode(t, &a)
			if got.code != 200 || !a.Changes {
				t.Fatalf("answer %d = %s, want changes", r, got)
			}
			if a.ids() != "" {
				set = append(set, strings.Split(a.ids(), ",")...)
			}
			removed = append(removed, a.Removed...)
			index, _ = strconv.ParseUint(got.header.Get("A8-Index"), 10, 64)
			if slices.Contains(set, added) && slices.Contains(removed, gone) && slices.Contains(removed, moved) {
				break
			}
			go func() {
				answer <- e.do("GET", "/api/v1/instances?tags=v1&changes=true&wait=10s&index="+strconv.FormatUint(index, 10), "", nil)
			}()
		}
		if !slices.Contains(set, added) || !slices.Contains(removed, gone) || !slices.Contains(removed, moved) || slices.Contains(set, keep) || slices.Contains(removed, keep) {
			t.Fatalf("changes: set %v, removed %v; want %s set, %s and %s (now v2, so not matching) removed, %s in neither", set, removed, added, gone, moved, keep)
		}

		// An index the log never covered (older than its start) gets the whole list.
		old := e.do("GET", "/api/v1/instances?tags=v1&changes=true&wait=1s&index=1", "", nil)
		var oa changesAnswer
		old.decode(t, &oa)
		if old.code != 200 || oa.Changes || oa.ids() == "" {
			t.Fatalf("a changes query from index 1 = %s, want the whole list", old)
		}
		if r := e.do("GET", "/api/v1/instances?changes=maybe", "", nil); r.code != http.StatusBadRequest || !strings.Contains(r.errorText(t), "changes") {
			t.Fatalf("changes=maybe: %s", r)
		}
	})
}
