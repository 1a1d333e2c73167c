package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/catalog/catalogtest"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/store/storetest"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

// The merged store is a store.Instances like any other: it passes the conformance suite, with a
// catalog that holds instances of a namespace the suite does not use, and an empty one.
func TestMerge_Conformance(t *testing.T) {
	merge := func(local store.Instances) store.Instances {
		busy := catalogtest.New("kubernetes")
		busy.Set("elsewhere", catalogtest.Instance("k1", "reviews", "10.1.0.1:9080"))
		return catalog.Merge(local, busy, catalogtest.New("file"))
	}
	t.Run("memory", func(t *testing.T) {
		storetest.TestInstances(t, func(t *testing.T, clock store.Clock) store.Instances {
			return merge(memory.NewInstances(clock))
		})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		var prefixes atomic.Int64
		storetest.TestInstances(t, func(t *testing.T, clock store.Clock) store.Instances {
			c, err := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
			if err != nil {
				t.Fatal(err)
			}
			s := redisstore.NewInstances(c, redisstore.InstancesOptions{Prefix: fmt.Sprintf("m%d", prefixes.Add(1)), Clock: clock})
			t.Cleanup(func() { s.Close(); c.Close() })
			return merge(s)
		})
	})
}

func TestMerge_WithoutCatalogsIsLocal(t *testing.T) {
	local := memory.NewInstances(nil)
	if got := catalog.Merge(local); got != local {
		t.Fatalf("Merge(local) = %T, want local itself", got)
	}
}

func ids(l store.InstanceList) string {
	out := make([]string, len(l.Instances))
	for i, in := range l.Instances {
		out[i] = in.ID
	}
	return strings.Join(out, ",")
}

func list(t *testing.T, s store.Instances, ns, service string) store.InstanceList {
	t.Helper()
	l, err := s.List(context.Background(), ns, service)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func register(t *testing.T, s store.Instances, ns string, in store.Instance) {
	t.Helper()
	in.TTL = time.Minute
	if _, err := s.Register(context.Background(), ns, in, -1); err != nil {
		t.Fatal(err)
	}
}

func TestMerge_List(t *testing.T) {
	local := memory.NewInstances(nil)
	k8s, file := catalogtest.New("kubernetes"), catalogtest.New("file")
	s := catalog.Merge(local, k8s, file)
	register(t, s, "default", catalogtest.Instance("l-reviews", "reviews", "10.0.0.1:80"))
	register(t, s, "default", catalogtest.Instance("l-details", "details", "10.0.0.2:80"))
	k8s.Set("default",
		catalogtest.Instance("k-reviews", "reviews", "10.1.0.1:80", "version=v2"),
		catalogtest.Instance("k-alpha", "alpha", "10.1.0.2:80"),
		catalogtest.Instance("shared", "ratings", "10.1.0.3:80"))
	file.Set("default",
		catalogtest.Instance("f-weather", "weather", "api.example.com:443"),
		catalogtest.Instance("shared", "ratings", "10.2.0.3:80")) // the earlier catalog wins
	file.Set("other", catalogtest.Instance("f-other", "other", "10.9.0.1:80"))

	l := list(t, s, "default", "")
	if got, want := ids(l), "k-alpha,l-details,shared,k-reviews,l-reviews,f-weather"; got != want {
		t.Fatalf("list = %s, want %s (sorted by service, then id)", got, want)
	}
	for _, in := range l.Instances {
		if in.ID == "shared" && in.Endpoint.Value != "10.1.0.3:80" {
			t.Fatalf("id clash between catalogs: got the later catalog's %v", in)
		}
	}
	// local index 2, kubernetes generation 1, file generation 1
	if l.Index != 4 {
		t.Fatalf("index = %d, want 4", l.Index)
	}
	if got := ids(list(t, s, "default", "reviews")); got != "k-reviews,l-reviews" {
		t.Fatalf("service reviews = %s", got)
	}
	if got := ids(list(t, s, "default", "nothing")); got != "" {
		t.Fatalf("unknown service = %s", got)
	}
	if l := list(t, s, "other", ""); ids(l) != "f-other" || l.Index != 1 {
		t.Fatalf("other namespace = %s at %d", ids(l), l.Index)
	}
	// The caller owns the list: changing it changes no later list.
	l.Instances[0].ServiceName = "scribbled"
	if in := list(t, s, "default", "").Instances[0]; in.ServiceName != "alpha" {
		t.Fatalf("a caller's change leaked into the store: %v", in)
	}
}

// A registered instance that a catalog later lists too is shown once (the registered one), and
// stays the registry's to renew and remove.
func TestMerge_LocalHidesCatalogOnClash(t *testing.T) {
	local := memory.NewInstances(nil)
	file := catalogtest.New("file")
	s := catalog.Merge(local, file)
	register(t, s, "default", catalogtest.Instance("same", "weather", "10.0.0.1:80", "registered"))
	file.Set("default", catalogtest.Instance("same", "weather", "10.0.0.1:80", "from-file"))
	l := list(t, s, "default", "")
	if len(l.Instances) != 1 || l.Instances[0].Tags[0] != "registered" {
		t.Fatalf("list = %+v, want the registered instance only", l.Instances)
	}
	ctx := context.Background()
	if err := s.Renew(ctx, "default", "same"); err != nil {
		t.Fatalf("renewing the registered instance: %v", err)
	}
	if err := s.Deregister(ctx, "default", "same"); err != nil {
		t.Fatalf("deregistering the registered instance: %v", err)
	}
	l = list(t, s, "default", "")
	if len(l.Instances) != 1 || l.Instances[0].Tags[0] != "from-file" {
		t.Fatalf("after deregistering, list = %+v, want the catalog's instance", l.Instances)
	}
}

func TestMerge_CatalogInstancesAreReadOnly(t *testing.T) {
	local := memory.NewInstances(nil)
	k8s := catalogtest.New("kubernetes")
	s := catalog.Merge(local, k8s)
	k8s.Set("default", catalogtest.Instance("pod-1-9080", "reviews", "10.1.0.1:9080"))
	ctx := context.Background()
	tests := []struct {
		op string
		do func() error
	}{
		{"register", func() error {
			_, err := s.Register(ctx, "default", catalogtest.Instance("pod-1-9080", "reviews", "10.1.0.1:9080"), -1)
			return err
		}},
		{"renew", func() error { return s.Renew(ctx, "default", "pod-1-9080") }},
		{"deregister", func() error { return s.Deregister(ctx, "default", "pod-1-9080") }},
	}
	for _, tc := range tests {
		t.Run(tc.op, func(t *testing.T) {
			err := tc.do()
			var ro *catalog.ReadOnlyError
			if !errors.Is(err, store.ErrReadOnly) || !errors.As(err, &ro) || ro.Catalog != "kubernetes" ||
				!strings.Contains(err.Error(), "instance pod-1-9080 belongs to the kubernetes catalog") {
				t.Fatalf("err = %v, want a read-only error naming the kubernetes catalog", err)
			}
		})
	}
	// Another tenant's instance of the same id is not read-only there: unknown.
	if err := s.Renew(ctx, "other", "pod-1-9080"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("renew in another namespace = %v, want ErrNotFound", err)
	}
	if l := list(t, s, "default", ""); len(l.Instances) != 1 {
		t.Fatalf("list after refused writes = %v", l.Instances)
	}
}

// Wait wakes on a local change and on a catalog change of the namespace, and the index it returns
// is the one the next list has.
func TestMerge_Wait(t *testing.T) {
	local := memory.NewInstances(nil)
	k8s, file := catalogtest.New("kubernetes"), catalogtest.New("file")
	s := catalog.Merge(local, k8s, file)
	ctx := context.Background()
	start := list(t, s, "default", "").Index

	type result struct {
		idx uint64
		err error
	}
	wait := func(after uint64) <-chan result {
		ch := make(chan result, 1)
		go func() {
			idx, err := s.Wait(ctx, "default", after)
			ch <- result{idx, err}
		}()
		return ch
	}
	woken := func(what string, ch <-chan result) uint64 {
		t.Helper()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("%s: %v", what, r.err)
			}
			if l := list(t, s, "default", ""); l.Index != r.idx {
				t.Fatalf("%s: Wait returned %d, List says %d", what, r.idx, l.Index)
			}
			return r.idx
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not wake the watcher", what)
		}
		return 0
	}
	asleep := func(what string, ch <-chan result) {
		t.Helper()
		select {
		case r := <-ch:
			t.Fatalf("%s woke the watcher: %+v", what, r)
		case <-time.After(50 * time.Millisecond):
		}
	}

	ch := wait(start)
	asleep("nothing", ch)
	k8s.Set("other", catalogtest.Instance("x", "x", "10.0.0.9:80"))
	asleep("a catalog change of another namespace", ch)
	k8s.Set("default", catalogtest.Instance("k1", "reviews", "10.1.0.1:80"))
	idx := woken("a catalog change", ch)
	if idx <= start {
		t.Fatalf("index went from %d to %d", start, idx)
	}

	ch = wait(idx)
	asleep("nothing", ch)
	register(t, s, "default", catalogtest.Instance("l1", "reviews", "10.0.0.1:80"))
	idx2 := woken("a registration", ch)
	if idx2 <= idx {
		t.Fatalf("index went from %d to %d", idx, idx2)
	}

	ch = wait(idx2)
	file.Set("default", catalogtest.Instance("f1", "weather", "10.2.0.1:80"))
	idx3 := woken("the second catalog", ch)

	// The same content again is no change.
	file.Set("default", catalogtest.Instance("f1", "weather", "10.2.0.1:80"))
	if l := list(t, s, "default", ""); l.Index != idx3 {
		t.Fatalf("republishing the same content moved the index from %d to %d", idx3, l.Index)
	}
	// Removing a catalog's instances raises the index too.
	ch = wait(idx3)
	file.Set("default")
	if idx4 := woken("a catalog emptying", ch); idx4 <= idx3 {
		t.Fatalf("index went from %d to %d", idx3, idx4)
	}
	// An index the client holds from elsewhere answers at once.
	if got, err := s.Wait(ctx, "default", 0); err != nil || got == 0 {
		t.Fatalf("Wait(0) = %d, %v", got, err)
	}
	// A context that ends returns the current index and its error.
	cur := list(t, s, "default", "").Index
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if got, err := s.Wait(tctx, "default", cur); !errors.Is(err, context.DeadlineExceeded) || got != cur {
		t.Fatalf("Wait past its deadline = %d, %v; want %d, deadline exceeded", got, err, cur)
	}
}

func TestFeed_ReplaceKeepsUnchangedNamespaces(t *testing.T) {
	clock := storetest.NewClock()
	f := catalog.NewFeed(clock.Now)
	a1 := catalogtest.Instance("a1", "svc", "10.0.0.1:80")
	b1 := catalogtest.Instance("b1", "svc", "10.0.0.2:80")
	if !f.Replace(map[string][]store.Instance{"a": {a1}, "b": {b1}}) {
		t.Fatal("first content: no change reported")
	}
	first := f.Snapshot()
	seen := first.Tenant("a").Instances[0].LastHeartbeat
	clock.Advance(time.Minute)
	if f.Replace(map[string][]store.Instance{"a": {a1}, "b": {b1}}) || f.Snapshot() != first {
		t.Fatal("the same content published a new snapshot")
	}
	b2 := b1
	b2.Tags = []string{"v2"}
	if !f.Replace(map[string][]store.Instance{"a": {a1}, "b": {b2}}) {
		t.Fatal("changed content: no change reported")
	}
	select {
	case <-first.Changed():
	default:
		t.Fatal("the replaced snapshot's Changed channel is open")
	}
	s := f.Snapshot()
	if s.Tenant("a") != first.Tenant("a") || s.Tenant("a").Generation != 1 || s.Tenant("b").Generation != 2 {
		t.Fatalf("generations a=%d b=%d; want a untouched at 1, b at 2", s.Tenant("a").Generation, s.Tenant("b").Generation)
	}
	if got := s.Tenant("a").Instances[0].LastHeartbeat; !got.Equal(seen) {
		t.Fatalf("unchanged instance's LastHeartbeat moved: %v → %v", seen, got)
	}
	if got := s.Tenant("b").Instances[0].LastHeartbeat; !got.Equal(seen.Add(time.Minute)) {
		t.Fatalf("changed instance's LastHeartbeat = %v, want the time of the change", got)
	}
	// A namespace left out is emptied but keeps counting.
	f.Replace(map[string][]store.Instance{"a": {a1}})
	if s := f.Snapshot(); len(s.Tenant("b").Instances) != 0 || s.Tenant("b").Generation != 3 || strings.Join(s.Namespaces(), ",") != "a" || s.Len() != 1 {
		t.Fatalf("after leaving b out: b=%+v namespaces=%v len=%d", s.Tenant("b"), s.Namespaces(), s.Len())
	}
	// Duplicate ids: the first wins.
	dup := a1
	dup.Endpoint.Value = "10.9.9.9:80"
	f.Replace(map[string][]store.Instance{"a": {a1, dup}})
	if got := f.Snapshot().Tenant("a").Instances; len(got) != 1 || got[0].Endpoint.Value != "10.0.0.1:80" {
		t.Fatalf("duplicate ids: %+v", got)
	}
}

func TestFeed_Status(t *testing.T) {
	clock := storetest.NewClock()
	f := catalog.NewFeed(clock.Now)
	if st := f.Status(); st.OK || !strings.Contains(st.Detail, "not synced") {
		t.Fatalf("new feed status = %+v", st)
	}
	f.Replace(map[string][]store.Instance{"a": {catalogtest.Instance("a1", "svc", "10.0.0.1:80")}})
	f.Synced()
	synced := clock.Now()
	clock.Advance(time.Second)
	f.Failed("source away")
	if st := f.Status(); st.OK || st.Detail != "source away" || !st.LastSync.Equal(synced) || st.Instances != 1 {
		t.Fatalf("failed status = %+v", st)
	}
}

// Listing through Merge costs the local list plus one merge pass: the catalogs' side is built
// once per change, not per list.
func BenchmarkMerge_List(b *testing.B) {
	for _, tc := range []struct {
		name  string
		merge bool
	}{{"local only", false}, {"merged", true}} {
		b.Run(tc.name, func(b *testing.B) {
			local := memory.NewInstances(nil)
			var s store.Instances = local
			cat := catalogtest.New("kubernetes")
			if tc.merge {
				s = catalog.Merge(local, cat)
				var list []store.Instance
				for i := range 1000 {
					list = append(list, catalogtest.Instance(fmt.Sprintf("k%04d", i), fmt.Sprintf("svc-%02d", i%50), fmt.Sprintf("10.1.%d.%d:80", i/250, i%250)))
				}
				cat.Set("default", list...)
			}
			for i := range 1000 {
				in := catalogtest.Instance(fmt.Sprintf("l%04d", i), fmt.Sprintf("svc-%02d", i%50), fmt.Sprintf("10.0.%d.%d:80", i/250, i%250))
				in.TTL = time.Hour
				if _, err := local.Register(context.Background(), "default", in, -1); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.List(ctx, "default", ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
