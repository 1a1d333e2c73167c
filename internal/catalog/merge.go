package catalog

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/a8fabric/a8/internal/store"
)

// Merge returns a store.Instances that is local with the catalogs' instances added, so that the
// registry, the Eureka API and sidecars see both. With no catalogs it returns local itself.
//
// Semantics, per namespace:
//   - List returns local's instances and the catalogs', sorted by service name then id as the
//     interface says. Ids are unique in a list: on a clash a registered (local) instance hides a
//     catalog's, and an earlier catalog (in the order given) hides a later one's.
//   - The index is local's index plus the generation of the namespace in every catalog. Each part
//     only rises (except local's after a store reset, which Wait allows), so the sum changes
//     whenever the local store or a catalog's content for the namespace changes, and a change of
//     another namespace does not move it.
//   - Wait wakes on a change of either.
//   - Register of an id a catalog owns is refused with a *ReadOnlyError (store.ErrReadOnly) naming
//     the catalog. Renew and Deregister go to local first, so that an instance registered before a
//     catalog came to list the same id can still be renewed and removed; an id only a catalog holds
//     is refused the same way.
//   - Catalog instances do not count against the namespace capacity, and never expire.
//   - Reap, Ping and Close are local's; the catalogs' goroutines stop with the context of their Run.
func Merge(local store.Instances, cats ...Catalog) store.Instances {
	if len(cats) == 0 {
		return local
	}
	return &merged{local: local, cats: slices.Clone(cats)}
}

type merged struct {
	local store.Instances
	cats  []Catalog

	view  atomic.Pointer[view]
	build sync.Mutex // one view build at a time
}

var _ store.Instances = (*merged)(nil)

// view is the catalogs' instances combined, per namespace, for one set of snapshots; it is built
// on the first use after any catalog changes and then only read, so that listing stays cheap.
type view struct {
	snaps   []*Snapshot
	tenants map[string]*mergedTenant
}

type mergedTenant struct {
	gen       uint64           // sum of the catalogs' generations
	instances []store.Instance // sorted by service then id, ids unique across catalogs
	owner     map[string]int   // id → index of the catalog it comes from
}

var emptyMerged = &mergedTenant{}

func (v *view) tenant(ns string) *mergedTenant {
	if t := v.tenants[ns]; t != nil {
		return t
	}
	return emptyMerged
}

func (m *merged) snapshots() []*Snapshot {
	snaps := make([]*Snapshot, len(m.cats))
	for i, c := range m.cats {
		snaps[i] = c.Snapshot()
	}
	return snaps
}

// current returns the view of the catalogs' current snapshots.
func (m *merged) current() *view {
	if v := m.view.Load(); v != nil && m.fresh(v) {
		return v
	}
	m.build.Lock()
	defer m.build.Unlock()
	if v := m.view.Load(); v != nil && m.fresh(v) {
		return v
	}
	v := buildView(m.snapshots())
	m.view.Store(v)
	return v
}

func (m *merged) fresh(v *view) bool {
	for i, c := range m.cats {
		if c.Snapshot() != v.snaps[i] {
			return false
		}
	}
	return true
}

func buildView(snaps []*Snapshot) *view {
	v := &view{snaps: snaps, tenants: map[string]*mergedTenant{}}
	for _, s := range snaps {
		for ns := range s.tenants {
			if v.tenants[ns] != nil {
				continue
			}
			mt := &mergedTenant{owner: map[string]int{}}
			for ci, s := range snaps {
				t := s.Tenant(ns)
				mt.gen += t.Generation
				for _, in := range t.Instances {
					if _, taken := mt.owner[in.ID]; taken {
						continue
					}
					mt.owner[in.ID] = ci
					mt.instances = append(mt.instances, in)
				}
			}
			slices.SortFunc(mt.instances, compareInstances)
			v.tenants[ns] = mt
		}
	}
	return v
}

// owner returns the catalog that holds id in ns, if one does.
func (m *merged) owner(ns, id string) (Catalog, bool) {
	ci, ok := m.current().tenant(ns).owner[id]
	if !ok {
		return nil, false
	}
	return m.cats[ci], true
}

func (m *merged) readOnly(ns, id string) error {
	if c, ok := m.owner(ns, id); ok {
		return &ReadOnlyError{ID: id, Catalog: c.Name()}
	}
	return nil
}

// Register implements store.Instances.
func (m *merged) Register(ctx context.Context, ns string, inst store.Instance, capacity int) (store.Instance, error) {
	if err := m.readOnly(ns, inst.ID); err != nil {
		return store.Instance{}, err
	}
	return m.local.Register(ctx, ns, inst, capacity)
}

// Renew implements store.Instances.
func (m *merged) Renew(ctx context.Context, ns, id string) error {
	err := m.local.Renew(ctx, ns, id)
	if errors.Is(err, store.ErrNotFound) {
		if ro := m.readOnly(ns, id); ro != nil {
			return ro
		}
	}
	return err
}

// Deregister implements store.Instances.
func (m *merged) Deregister(ctx context.Context, ns, id string) error {
	err := m.local.Deregister(ctx, ns, id)
	if errors.Is(err, store.ErrNotFound) {
		if ro := m.readOnly(ns, id); ro != nil {
			return ro
		}
	}
	return err
}

// List implements store.Instances.
func (m *merged) List(ctx context.Context, ns, service string) (store.InstanceList, error) {
	l, err := m.local.List(ctx, ns, service)
	if err != nil {
		return l, err
	}
	mt := m.current().tenant(ns)
	l.Index += mt.gen
	cat := mt.instances
	if service != "" {
		cat = serviceRange(cat, service)
	}
	if len(cat) == 0 {
		return l, nil
	}
	// A registered instance hides a catalog's of the same id (rare: Register refuses such ids).
	var hidden map[string]bool
	for i := range l.Instances {
		if _, ok := mt.owner[l.Instances[i].ID]; ok {
			if hidden == nil {
				hidden = map[string]bool{}
			}
			hidden[l.Instances[i].ID] = true
		}
	}
	out := make([]store.Instance, 0, len(l.Instances)+len(cat))
	a, b := l.Instances, cat
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && compareInstances(a[0], b[0]) <= 0):
			out = append(out, a[0])
			a = a[1:]
		default:
			if !hidden[b[0].ID] {
				out = append(out, b[0])
			}
			b = b[1:]
		}
	}
	l.Instances = out
	return l, nil
}

// Wait implements store.Instances: it waits on the local store for the part of after that is
// local's, and wakes it when any catalog publishes.
func (m *merged) Wait(ctx context.Context, ns string, after uint64) (uint64, error) {
	for {
		snaps := m.snapshots()
		var gen uint64
		for _, s := range snaps {
			gen += s.Tenant(ns).Generation
		}
		localAfter := uint64(math.MaxUint64) // after is below the catalogs' part: differs at once
		if after >= gen {
			localAfter = after - gen
		}
		wctx, cancel := context.WithCancel(ctx)
		var catalogChanged atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			if i, _, _ := reflect.Select(changedCases(wctx, snaps)); i > 0 {
				catalogChanged.Store(true)
			}
			cancel()
		}()
		idx, err := m.local.Wait(wctx, ns, localAfter)
		cancel()
		<-done
		switch {
		case err == nil:
			if cur := idx + m.gen(ns); cur != after {
				return cur, nil
			}
		case ctx.Err() != nil:
			return idx + m.gen(ns), ctx.Err()
		case !catalogChanged.Load():
			return 0, err // the local store failed
		}
		// A catalog published (perhaps for another namespace): look again.
	}
}

// changedCases selects on ctx and every snapshot's Changed channel.
func changedCases(ctx context.Context, snaps []*Snapshot) []reflect.SelectCase {
	cases := make([]reflect.SelectCase, 0, len(snaps)+1)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
	for _, s := range snaps {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.Changed())})
	}
	return cases
}

// gen is the catalogs' part of ns's index now.
func (m *merged) gen(ns string) uint64 {
	var gen uint64
	for _, c := range m.cats {
		gen += c.Snapshot().Tenant(ns).Generation
	}
	return gen
}

// Reap implements store.Instances: catalog instances never expire.
func (m *merged) Reap(ctx context.Context) (int, error) { return m.local.Reap(ctx) }

// Ping implements store.Instances. A catalog that cannot reach its source is not a store failure:
// it keeps its last content and says so in its Status.
func (m *merged) Ping(ctx context.Context) error { return m.local.Ping(ctx) }

// Close implements store.Instances.
func (m *merged) Close() error { return m.local.Close() }
