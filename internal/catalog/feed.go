package catalog

import (
	"cmp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a8fabric/a8/internal/store"
)

// Snapshot is a catalog's whole content at one moment, per namespace. It is immutable once
// published: readers share it without locks and must not modify what it returns.
type Snapshot struct {
	tenants map[string]*Tenant
	total   int
	changed chan struct{} // closed when a newer snapshot replaces this one
}

// Tenant is one namespace's part of a snapshot.
type Tenant struct {
	// Generation rises each time the namespace's content changes, and never goes back (a namespace
	// whose instances all went keeps its generation, with no instances).
	Generation uint64
	// Instances are sorted by service name then id, ids unique. Shared: read only.
	Instances []store.Instance
	ids       map[string]int // id → index in Instances
}

var emptyTenant = &Tenant{}

// Tenant returns namespace ns's content (empty, generation 0, if the catalog never had any).
func (s *Snapshot) Tenant(ns string) *Tenant {
	if t := s.tenants[ns]; t != nil {
		return t
	}
	return emptyTenant
}

// Namespaces returns the namespaces that have instances, sorted.
func (s *Snapshot) Namespaces() []string {
	out := make([]string, 0, len(s.tenants))
	for ns, t := range s.tenants {
		if len(t.Instances) > 0 {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out
}

// Len is the number of instances over all namespaces.
func (s *Snapshot) Len() int { return s.total }

// Changed is closed when a newer snapshot is published (the content of some namespace changed).
func (s *Snapshot) Changed() <-chan struct{} { return s.changed }

// Has reports whether the namespace holds an instance with this id.
func (t *Tenant) Has(id string) bool {
	_, ok := t.ids[id]
	return ok
}

// Service returns the instances of one service (a subslice of Instances; read only).
func (t *Tenant) Service(name string) []store.Instance {
	return serviceRange(t.Instances, name)
}

// serviceRange returns the run of list (sorted by service, id) whose service is name.
func serviceRange(list []store.Instance, name string) []store.Instance {
	lo := sort.Search(len(list), func(i int) bool { return list[i].ServiceName >= name })
	hi := lo + sort.Search(len(list)-lo, func(i int) bool { return list[lo+i].ServiceName > name })
	return list[lo:hi:hi]
}

func compareInstances(a, b store.Instance) int {
	if c := cmp.Compare(a.ServiceName, b.ServiceName); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Feed holds a catalog's current snapshot and its status. A catalog computes its full content each
// time its source changes and hands it to Replace; the Feed keeps the generation of every namespace
// whose content is the same, so that watchers wake only for real changes. Safe for concurrent use.
type Feed struct {
	clock store.Clock

	mu     sync.Mutex // serialises Replace
	cur    atomic.Pointer[Snapshot]
	status atomic.Pointer[Status]
}

// NewFeed returns a feed with empty content and a status that says the catalog has not synced
// yet. A nil clock means time.Now.
func NewFeed(clock store.Clock) *Feed {
	if clock == nil {
		clock = time.Now
	}
	f := &Feed{clock: clock}
	f.cur.Store(&Snapshot{tenants: map[string]*Tenant{}, changed: make(chan struct{})})
	f.status.Store(&Status{Detail: "starting: not synced with its source yet"})
	return f
}

// Snapshot returns the current content; never nil.
func (f *Feed) Snapshot() *Snapshot { return f.cur.Load() }

// Status returns the catalog's status, with its instance count.
func (f *Feed) Status() Status {
	s := *f.status.Load()
	s.Instances = f.cur.Load().Len()
	return s
}

// Synced records that the content was just confirmed against the source.
func (f *Feed) Synced() {
	f.status.Store(&Status{OK: true, LastSync: f.clock()})
}

// Failed records that the source could not be read, or its content is broken, and why; the
// content stays as it is.
func (f *Feed) Failed(detail string) {
	prev := f.status.Load()
	f.status.Store(&Status{Detail: detail, LastSync: prev.LastSync})
}

// Replace publishes content (namespace → instances, in any order) as the catalog's whole content:
// a namespace it leaves out is emptied. Within a namespace, the first instance of an id wins.
// An instance's LastHeartbeat is when the catalog first saw it as it is now. Replace copies what it
// keeps; the caller may reuse content. It reports whether anything changed.
func (f *Feed) Replace(content map[string][]store.Instance) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.cur.Load()
	now := f.clock().UTC()
	tenants := make(map[string]*Tenant, max(len(content), len(old.tenants)))
	changed := false
	for ns, list := range content {
		prev := old.Tenant(ns)
		t := buildTenant(prev, list, now)
		changed = changed || t != prev
		if t != emptyTenant {
			tenants[ns] = t
		}
	}
	for ns, t := range old.tenants {
		if _, ok := content[ns]; ok {
			continue
		}
		if len(t.Instances) > 0 {
			t = &Tenant{Generation: t.Generation + 1}
			changed = true
		}
		tenants[ns] = t // kept, even empty, so its generation never goes back
	}
	if !changed {
		return false
	}
	next := &Snapshot{tenants: tenants, changed: make(chan struct{})}
	for _, t := range tenants {
		next.total += len(t.Instances)
	}
	f.cur.Store(next)
	close(old.changed)
	return true
}

// buildTenant returns old if list has the same content, else a new tenant one generation on.
func buildTenant(old *Tenant, list []store.Instance, now time.Time) *Tenant {
	sorted := make([]store.Instance, len(list))
	copy(sorted, list)
	slices.SortStableFunc(sorted, compareInstances)
	ids := make(map[string]int, len(sorted))
	kept := sorted[:0]
	for _, in := range sorted {
		if _, dup := ids[in.ID]; dup {
			continue
		}
		ids[in.ID] = len(kept)
		in.Tags = slices.Clone(in.Tags)
		in.Metadata = slices.Clone(in.Metadata)
		kept = append(kept, in)
	}
	if slices.EqualFunc(kept, old.Instances, func(a, b store.Instance) bool { return a.Equal(&b) }) {
		return old
	}
	for i := range kept {
		kept[i].LastHeartbeat = now
		if j, ok := old.ids[kept[i].ID]; ok && old.Instances[j].Equal(&kept[i]) {
			kept[i].LastHeartbeat = old.Instances[j].LastHeartbeat
		}
	}
	return &Tenant{Generation: old.Generation + 1, Instances: slices.Clip(kept), ids: ids}
}
