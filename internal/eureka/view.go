package eureka

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a8fabric/a8/internal/store"
)

// A view is one replica's Eureka picture of one namespace: an immutable snapshot of its instances,
// rendered for Eureka and indexed for every lookup, and the queue of recent changes that deltas are
// made of. A goroutine keeps it in step with the store (Wait, then List and diff), so each replica
// builds correct deltas from the shared store whoever made the change; a write through this replica
// lists again before it answers, so a client reads its own writes.

// entry is one instance of a snapshot. Entries are immutable and shared between snapshots while the
// instance does not change.
type entry struct {
	a8 store.Instance
	in *Instance // the Eureka rendering
	// eureka is true when the instance was registered through the Eureka API (it has a record).
	eureka bool
	// json and xml are the instance rendered, made on first use: a snapshot's document is these
	// joined, so a change renders only the instances that changed.
	json, xml atomic.Pointer[[]byte]
}

// rendered returns the instance as Eureka writes it in a document (without an action type).
func (e *entry) rendered(asJSON bool) []byte {
	p := &e.xml
	if asJSON {
		p = &e.json
	}
	if b := p.Load(); b != nil {
		return *b
	}
	var b []byte
	if asJSON {
		b = appendInstanceJSON(nil, e.in, "")
	} else {
		b = appendInstanceXML(nil, e.in, "")
	}
	p.Store(&b)
	return b
}

// snapshot is a namespace's instances at one point, ready to serve.
type snapshot struct {
	version      int64 // versions__delta
	hash         string
	groups       []group // by app name, instances by instanceId
	byApp        map[string]int
	byA8         map[string]*entry
	byInstanceID map[string]*entry
	vips, svips  map[string][]*entry
	// rendered GET apps bodies: [json?1:0][gzip?1:0]
	rendered [2][2]atomic.Pointer[[]byte]
}

// change is an entry of the delta queue.
type change struct {
	at     time.Time
	action string
	id     string // a8 id
	in     *Instance
}

type view struct {
	s  *Server
	ns string

	snap     atomic.Pointer[snapshot]
	lastUsed atomic.Int64 // unix nanoseconds of the last Eureka request
	written  atomic.Uint64

	mu       sync.Mutex // one refresh at a time; guards the fields below
	index    uint64     // store index of the snapshot
	listings uint64     // listings installed (or found unchanged) so far
	synced   uint64     // writes (written) the snapshot is known to include
	version  int64
	queue    []change

	stop context.CancelFunc
	done chan struct{}
}

func newSnapshot(entries map[string]*entry, version int64) *snapshot {
	sn := &snapshot{
		version:      version,
		byApp:        make(map[string]int),
		byA8:         entries,
		byInstanceID: make(map[string]*entry, len(entries)),
		vips:         make(map[string][]*entry),
		svips:        make(map[string][]*entry),
	}
	list := make([]*entry, 0, len(entries))
	counts := make(map[string]int)
	for _, e := range entries {
		list = append(list, e)
		counts[e.in.EffectiveStatus()]++
		if prev := sn.byInstanceID[e.in.InstanceID]; prev == nil || idRank(e) < idRank(prev) ||
			(idRank(e) == idRank(prev) && e.a8.ID < prev.a8.ID) {
			sn.byInstanceID[e.in.InstanceID] = e
		}
	}
	slices.SortFunc(list, func(a, b *entry) int {
		if c := cmp.Compare(a.in.App, b.in.App); c != 0 {
			return c
		}
		if c := cmp.Compare(a.in.InstanceID, b.in.InstanceID); c != 0 {
			return c
		}
		return cmp.Compare(a.a8.ID, b.a8.ID)
	})
	for _, e := range list {
		if n := len(sn.groups); n == 0 || sn.groups[n-1].name != e.in.App {
			sn.byApp[e.in.App] = len(sn.groups)
			sn.groups = append(sn.groups, group{name: e.in.App})
		}
		g := &sn.groups[len(sn.groups)-1]
		g.items = append(g.items, item{in: e.in, e: e})
		for _, v := range splitVIPs(e.in.VIPAddress) {
			sn.vips[v] = append(sn.vips[v], e)
		}
		for _, v := range splitVIPs(e.in.SecureVIPAddress) {
			sn.svips[v] = append(sn.svips[v], e)
		}
	}
	sn.hash = hashcode(counts)
	return sn
}

// idRank orders the entries that claim one instanceId (rare: a native instance's instanceId is its a8
// id; a catalog may mirror a Eureka instance under another id): first the instance registered here
// through Eureka (whose a8 id derives from the instanceId), then other Eureka records, then native
// instances, so that a Eureka client always finds its own instance.
func idRank(e *entry) int {
	switch {
	case e.eureka && e.a8.ID == ID(e.in.InstanceID):
		return 0
	case e.eureka:
		return 1
	}
	return 2
}

// hashcode is Eureka's reconcile hash code: STATUS_count_ for each status, in status order.
func hashcode(counts map[string]int) string {
	statuses := make([]string, 0, len(counts))
	for s := range counts {
		statuses = append(statuses, s)
	}
	slices.Sort(statuses)
	var b strings.Builder
	for _, s := range statuses {
		b.WriteString(s)
		b.WriteByte('_')
		b.WriteString(strconv.Itoa(counts[s]))
		b.WriteByte('_')
	}
	return b.String()
}

// HashCode computes apps__hashcode for a set of applications, as a Java client does to check a delta.
func HashCode(apps []*Application) string {
	counts := make(map[string]int)
	for _, a := range apps {
		for _, in := range a.Instances {
			counts[in.EffectiveStatus()]++
		}
	}
	return hashcode(counts)
}

// refresh lists the namespace and installs the new snapshot, recording what changed. Called with
// v.mu held.
func (v *view) refresh(ctx context.Context) error {
	covers := v.written.Load()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := v.s.cfg.Store.List(ctx, v.ns, "")
	if err != nil {
		return err
	}
	v.install(l)
	v.listings++
	v.synced = max(v.synced, covers)
	return nil
}

// install diffs a listing against the current snapshot and, if anything changed, installs a new
// snapshot and queues the changes. The first listing of a view queues every instance as ADDED: the
// view cannot know what changed before it existed, so for one retention period delta clients are
// told of everything, which is harmless to clients that already had it.
func (v *view) install(l store.InstanceList) {
	now := v.s.cfg.Clock()
	nowMS := now.UnixMilli()
	old := v.snap.Load()
	var oldByA8 map[string]*entry
	if old != nil {
		oldByA8 = old.byA8
	}
	entries := make(map[string]*entry, len(l.Instances))
	var changes []change
	for i := range l.Instances {
		a := &l.Instances[i]
		if _, dup := entries[a.ID]; dup {
			continue
		}
		prev := oldByA8[a.ID]
		if prev != nil && prev.a8.Equal(a) {
			entries[a.ID] = prev
			continue
		}
		in, isEureka := fromA8(a, nowMS)
		e := &entry{a8: *a, in: in, eureka: isEureka}
		entries[a.ID] = e
		action := ActionAdded
		if prev != nil {
			action = ActionModified
		}
		changes = append(changes, change{at: now, action: action, id: a.ID, in: in})
	}
	for id, prev := range oldByA8 {
		if entries[id] == nil {
			changes = append(changes, change{at: now, action: ActionDeleted, id: id, in: prev.in})
		}
	}
	v.index = l.Index
	if old != nil && len(changes) == 0 {
		return
	}
	v.version++
	v.queue = append(v.queue, changes...)
	v.pruneLocked(now)
	v.snap.Store(newSnapshot(entries, v.version))
}

// pruneLocked drops changes older than the retention period. Called with v.mu held.
func (v *view) pruneLocked(now time.Time) {
	cut := 0
	for cut < len(v.queue) && now.Sub(v.queue[cut].at) > v.s.cfg.DeltaRetention {
		cut++
	}
	if cut > 0 {
		v.queue = slices.Delete(v.queue, 0, cut)
	}
}

// delta returns the changes of the retention period, the latest one per instance, grouped by app, and
// the snapshot they lead to.
func (v *view) delta() ([]group, *snapshot) {
	v.mu.Lock()
	v.pruneLocked(v.s.cfg.Clock())
	latest := make(map[string]change, len(v.queue))
	for _, c := range v.queue {
		latest[c.id] = c
	}
	sn := v.snap.Load()
	v.mu.Unlock()

	list := make([]change, 0, len(latest))
	for _, c := range latest {
		list = append(list, c)
	}
	slices.SortFunc(list, func(a, b change) int {
		if c := cmp.Compare(a.in.App, b.in.App); c != 0 {
			return c
		}
		if c := cmp.Compare(a.in.InstanceID, b.in.InstanceID); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	var groups []group
	for _, c := range list {
		if n := len(groups); n == 0 || groups[n-1].name != c.in.App {
			groups = append(groups, group{name: c.in.App})
		}
		g := &groups[len(groups)-1]
		g.items = append(g.items, item{in: c.in, action: c.action})
	}
	return groups, sn
}

// load returns the current snapshot, listing the namespace first if the view has none yet.
func (v *view) load(ctx context.Context) (*snapshot, error) {
	if sn := v.snap.Load(); sn != nil {
		return sn, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if sn := v.snap.Load(); sn != nil {
		return sn, nil
	}
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	return v.snap.Load(), nil
}

// wrote makes the snapshot include a write this replica just made to the store, listing again unless
// a listing that started after the write has already been installed (concurrent writers share one).
func (v *view) wrote(ctx context.Context) {
	seq := v.written.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.synced >= seq {
		return
	}
	if err := v.refresh(context.WithoutCancel(ctx)); err != nil {
		v.s.log.Warn("eureka: cannot list the namespace after a write; its view catches up when the store answers",
			"namespace", v.ns, "error", err)
	}
}

// refreshNow lists the namespace again (for a lookup that missed: the instance may have been
// registered through another replica a moment ago).
func (v *view) refreshNow(ctx context.Context) (*snapshot, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	return v.snap.Load(), nil
}

// run keeps the view in step with the store until ctx ends: it waits for the namespace's index to
// move, then lists it. A listing is also made every resync period, in case a change notification
// was lost.
//
// It waits past the index the store's Wait last answered, not the listing's, when the two differ:
// a store's change feed (Redis pub/sub) may lag its data, and waiting past the listing's index
// would then return at once, again and again, until the feed caught up.
func (v *view) run(ctx context.Context) {
	defer close(v.done)
	const resync = 5 * time.Minute
	backoff := time.Duration(0)
	failing := false
	var after uint64  // the index to wait past
	fromWait := false // after is what Wait answered (not a listing's index)
	var seen uint64   // v.listings when after was set
	for {
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		v.mu.Lock()
		idx, listings, loaded := v.index, v.listings, v.snap.Load() != nil
		v.mu.Unlock()
		if !fromWait || listings != seen { // a newer listing (a write here) sets the index to wait past
			after = idx
		}
		got := after
		if loaded {
			wctx, cancel := context.WithTimeout(ctx, resync)
			var err error
			got, err = v.s.cfg.Store.Wait(wctx, v.ns, after)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				backoff = v.fail(&failing, backoff, err)
				fromWait = false
				continue
			}
		}
		v.mu.Lock()
		err := v.refresh(ctx)
		idx, seen = v.index, v.listings
		v.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff = v.fail(&failing, backoff, err)
			fromWait = false
			continue
		}
		if failing {
			v.s.log.Info("eureka: namespace view in step with the store again", "namespace", v.ns)
		}
		failing, backoff = false, 0
		after, fromWait = got, loaded && got != idx
	}
}

func (v *view) fail(failing *bool, backoff time.Duration, err error) time.Duration {
	if !*failing {
		v.s.log.Warn("eureka: cannot follow the namespace's changes; retrying", "namespace", v.ns, "error", err)
	}
	*failing = true
	return min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
}
