package memory

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
)

// MaxTraceGroups is the most trace groups (distinct trace values) a namespace holds at once. Trace
// values come from sidecars, so without a bound any number of them could pile up until retention
// removes them; when a new one would exceed the bound, the least recently changed group is evicted.
const MaxTraceGroups = 1000

// Recipes is the in-memory store.Recipes. Nothing is written to disk: recipes are transient tests,
// and a restarted controller starts without them.
//
// Recipes are kept until DeleteRecipe, at most opts.MaxRecipes (default 1,000) per namespace.
//
// Records are bounded, per namespace, by:
//   - MaxTraceGroups (1,000) trace groups; a new one beyond it evicts the least recently changed;
//   - opts.MaxRecords per group (default 100,000): the oldest records by arrival are dropped and
//     counted in Dropped; so are in-flight request ids, the oldest starts first (not counted);
//   - opts.MaxBytes (default 256 MiB), an approximate budget of the memory the namespace's records
//     and in-flight starts take: each record counts the lengths of its string fields plus a
//     constant for the rest (recordOverhead), each start its id's length plus startOverhead. An
//     append that leaves the namespace over budget evicts whole groups, the least recently changed
//     first, but never a group the batch added to; if the batch's own groups still exceed the
//     budget, the group holding the most bytes drops its oldest records (counted in Dropped), then
//     its oldest starts, and so on until the namespace is within budget. A batch whose groups fit
//     thus never loses anything to another tenant's or another group's records.
//   - opts.Retention (default 24h): a trace group no batch added anything to for that long is gone.
//     Reads and appends check that as they go, and a janitor goroutine, started by NewRecipes and
//     stopped by Close, sweeps every namespace every Retention/2 (between 10ms and one minute), so
//     that groups nobody reads again do not hold memory.
//
// Each group remembers the ids of the records it keeps (the keys of a map, which the MaxBytes
// estimate includes), and forgets the ids of dropped records (their entries are removed when the
// map is rebuilt, once they are half of it). A record whose id is kept already is skipped, and a start whose record is kept already does not go in flight. Within a
// batch, starts are applied before records, so a request that began and ended within one batch is
// not left in flight. A start delivered after its record was dropped (sidecars deliver in order,
// so only a misbehaving one does that) stays in flight until the bound drops it or its group
// expires.
//
// Each namespace has its own lock: appends and reads of one tenant never wait for another's.
type Recipes struct {
	opts  store.RecipesOptions
	clock store.Clock

	mu      sync.Mutex
	tenants map[string]*recipeTenant

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ store.Recipes = (*Recipes)(nil)

type recipeTenant struct {
	mu      sync.Mutex
	dead    bool // removed from Recipes.tenants by the janitor: look the namespace up again
	recipes map[string]store.Recipe
	traces  map[string]*traceGroup
	lru     list.List // of *traceGroup, least recently changed first
	bytes   int64     // the estimated size of every group's records and starts
}

// traceGroup holds the records of one trace value.
type traceGroup struct {
	trace   string
	elem    *list.Element // in recipeTenant.lru
	changed time.Time
	changes int64
	dropped int
	bytes   int64 // the estimated size of its records and starts

	// The records kept are a ring of n records from records[head], oldest first; it grows by
	// doubling, up to MaxRecords, and shrinks by half when three quarters of it are empty.
	records []api.Record
	head, n int
	// ids maps the id of each record appended to its arrival number (1 for the first record ever
	// kept, so dropped + n for the newest): the group keeps the record of an id whose number is
	// greater than dropped. Ids of dropped records are not deleted one by one (deletes would slow
	// the map down); the map is rebuilt from the records kept when they are half of it.
	ids map[string]int

	inflight map[string]*list.Element // id -> its element in starts
	starts   list.List                // of string (ids), oldest start first
}

// recordOverhead is what a kept record takes beyond its strings' bytes: the api.Record (232 bytes
// on 64-bit platforms) and its id's entry in the group's map of ids (counting the entry a dropped
// record may hold until the map is rebuilt).
const recordOverhead = 360

// startOverhead is what an in-flight start takes beyond its id's bytes: a map entry and a list
// element.
const startOverhead = 112

// recordSize estimates the memory a kept record takes.
func recordSize(r *api.Record) int64 {
	return int64(recordOverhead + len(r.ID) + len(r.Src) + len(r.Dst) + len(r.Method) + len(r.Path) +
		len(r.Protocol) + len(r.RequestID) + len(r.UpstreamHost) + len(r.ResponseFlags) + len(r.TraceKey) +
		len(r.TraceValue))
}

func startSize(id string) int64 { return int64(startOverhead + len(id)) }

// NewRecipes returns an empty store bounded by opts (defaults filled in) and starts its janitor;
// Close stops it. A nil clock means time.Now.
func NewRecipes(opts store.RecipesOptions, clock store.Clock) *Recipes {
	if clock == nil {
		clock = time.Now
	}
	s := &Recipes{
		opts:    opts.WithDefaults(),
		clock:   clock,
		tenants: make(map[string]*recipeTenant),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.janitor()
	return s
}

// janitorInterval is how often the janitor sweeps: half the retention, within [10ms, 1min].
func (s *Recipes) janitorInterval() time.Duration {
	return min(max(s.opts.Retention/2, 10*time.Millisecond), time.Minute)
}

func (s *Recipes) janitor() {
	defer close(s.done)
	tick := time.NewTicker(s.janitorInterval())
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.sweep()
		}
	}
}

// sweep removes every expired trace group, and the namespaces left empty.
func (s *Recipes) sweep() {
	s.mu.Lock()
	tenants := make(map[string]*recipeTenant, len(s.tenants))
	for ns, t := range s.tenants {
		tenants[ns] = t
	}
	s.mu.Unlock()
	for ns, t := range tenants {
		now := s.clock()
		t.mu.Lock()
		// The lru list is ordered by last change: expired groups are at its front.
		for e := t.lru.Front(); e != nil; e = t.lru.Front() {
			g := e.Value.(*traceGroup)
			if !s.expired(g.changed, now) {
				break
			}
			t.removeGroup(g)
		}
		empty := t.empty()
		t.mu.Unlock()
		if !empty {
			continue
		}
		s.mu.Lock()
		t.mu.Lock()
		if t.empty() && s.tenants[ns] == t {
			delete(s.tenants, ns)
			t.dead = true
		}
		t.mu.Unlock()
		s.mu.Unlock()
	}
}

func (s *Recipes) expired(changed, now time.Time) bool {
	return now.Sub(changed) >= s.opts.Retention
}

func (t *recipeTenant) empty() bool { return len(t.recipes) == 0 && len(t.traces) == 0 }

func (t *recipeTenant) removeGroup(g *traceGroup) {
	t.lru.Remove(g.elem)
	delete(t.traces, g.trace)
	t.bytes -= g.bytes
}

// lockTenant returns ns's tenant, locked, creating it if create is set; nil if there is none.
func (s *Recipes) lockTenant(ns string, create bool) *recipeTenant {
	for {
		s.mu.Lock()
		t := s.tenants[ns]
		if t == nil {
			if !create {
				s.mu.Unlock()
				return nil
			}
			t = &recipeTenant{recipes: make(map[string]store.Recipe), traces: make(map[string]*traceGroup)}
			s.tenants[ns] = t
		}
		s.mu.Unlock()
		t.mu.Lock()
		if !t.dead {
			return t
		}
		t.mu.Unlock() // the janitor removed it meanwhile: look again
	}
}

// group returns the live trace group of trace, removing it if it has expired. Called with t.mu held.
func (s *Recipes) group(t *recipeTenant, trace string, now time.Time) *traceGroup {
	g := t.traces[trace]
	if g != nil && s.expired(g.changed, now) {
		t.removeGroup(g)
		return nil
	}
	return g
}

func cloneRecipe(r store.Recipe) store.Recipe {
	r.Spec = slices.Clone(r.Spec)
	r.RuleIDs = slices.Clone(r.RuleIDs)
	return r
}

// CreateRecipe implements store.Recipes.
func (s *Recipes) CreateRecipe(ctx context.Context, ns string, r store.Recipe) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.ID == "" {
		return errors.New("create recipe: the recipe has no id")
	}
	t := s.lockTenant(ns, true)
	defer t.mu.Unlock()
	if _, ok := t.recipes[r.ID]; ok {
		return fmt.Errorf("recipe %q: %w", r.ID, store.ErrExists)
	}
	if n := len(t.recipes); n >= s.opts.MaxRecipes {
		return store.RecipeCapacityError(r.ID, n)
	}
	t.recipes[r.ID] = cloneRecipe(r)
	return nil
}

// Recipe implements store.Recipes.
func (s *Recipes) Recipe(ctx context.Context, ns, id string) (store.Recipe, error) {
	if err := ctx.Err(); err != nil {
		return store.Recipe{}, err
	}
	t := s.lockTenant(ns, false)
	if t == nil {
		return store.Recipe{}, fmt.Errorf("recipe %q: %w", id, store.ErrNotFound)
	}
	defer t.mu.Unlock()
	r, ok := t.recipes[id]
	if !ok {
		return store.Recipe{}, fmt.Errorf("recipe %q: %w", id, store.ErrNotFound)
	}
	return cloneRecipe(r), nil
}

// ListRecipes implements store.Recipes: oldest first by Created, then by id.
func (s *Recipes) ListRecipes(ctx context.Context, ns string) ([]store.Recipe, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []store.Recipe{}
	t := s.lockTenant(ns, false)
	if t == nil {
		return out, nil
	}
	for _, r := range t.recipes {
		out = append(out, cloneRecipe(r))
	}
	t.mu.Unlock()
	store.SortRecipes(out)
	return out, nil
}

// DeleteRecipe implements store.Recipes.
func (s *Recipes) DeleteRecipe(ctx context.Context, ns, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.clock()
	t := s.lockTenant(ns, false)
	if t == nil {
		return fmt.Errorf("recipe %q: %w", id, store.ErrNotFound)
	}
	defer t.mu.Unlock()
	_, found := t.recipes[id]
	delete(t.recipes, id)
	if g := s.group(t, id, now); g != nil {
		t.removeGroup(g)
		found = true
	}
	if !found {
		return fmt.Errorf("recipe %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// batchGroup is what AppendRecords knows of a trace value of its batch.
type batchGroup struct {
	trace string
	g     *traceGroup // nil until the batch adds something new to a trace with no live group
	add   bool        // the batch adds something new to the group
}

// AppendRecords implements store.Recipes. The batch is applied atomically: readers see all of it
// or none of it.
func (s *Recipes) AppendRecords(ctx context.Context, ns string, b api.RecordBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	traced := false
	for i := range b.Started {
		traced = traced || b.Started[i].TraceValue != ""
	}
	for i := range b.Records {
		traced = traced || b.Records[i].TraceValue != ""
	}
	if !traced {
		return nil
	}
	now := s.clock()
	t := s.lockTenant(ns, true)
	defer t.mu.Unlock()

	// First, which groups the batch adds anything new to: the others it leaves as they are.
	groups := make(map[string]*batchGroup, 1)
	var order []*batchGroup // by first appearance in the batch
	lookup := func(trace string) *batchGroup {
		bg := groups[trace]
		if bg == nil {
			bg = &batchGroup{trace: trace, g: s.group(t, trace, now)}
			bg.add = bg.g == nil
			groups[trace] = bg
			order = append(order, bg)
		}
		return bg
	}
	for i := range b.Started {
		if st := &b.Started[i]; st.TraceValue != "" {
			if bg := lookup(st.TraceValue); !bg.add && !bg.g.knows(st.ID) {
				bg.add = true
			}
		}
	}
	for i := range b.Records {
		if rec := &b.Records[i]; rec.TraceValue != "" {
			if bg := lookup(rec.TraceValue); !bg.add && !bg.g.recorded(rec.ID) {
				bg.add = true
			}
		}
	}
	adding := false
	for _, bg := range order {
		if bg.add {
			bg.g = s.touch(t, bg.trace, bg.g, now)
			adding = true
		}
	}
	if !adding {
		return nil
	}

	// Starts first, then records: a batch holds the starts of requests that may end in the same
	// batch, and their records must take them out of flight.
	for i := range b.Started {
		st := &b.Started[i]
		if st.TraceValue == "" {
			continue
		}
		bg := groups[st.TraceValue]
		if !bg.add || bg.g.knows(st.ID) {
			continue // a repeated start keeps its place; a recorded request is over
		}
		bg.g.inflight[st.ID] = bg.g.starts.PushBack(st.ID)
		t.grow(bg.g, startSize(st.ID))
	}
	for i := range b.Records {
		rec := &b.Records[i]
		if rec.TraceValue == "" {
			continue
		}
		bg := groups[rec.TraceValue]
		if g := bg.g; bg.add && !g.recorded(rec.ID) {
			t.endStart(g, rec.ID)
			t.addRecord(g, rec, s.opts.MaxRecords)
		}
	}
	for _, bg := range order {
		if g := bg.g; bg.add {
			for len(g.inflight) > s.opts.MaxRecords {
				t.dropStart(g)
			}
			g.changes++
		}
	}

	s.enforceBounds(t, groups)
	return nil
}

// enforceBounds evicts the least recently changed groups of t while it holds more than
// MaxTraceGroups (a batch of more trace values than that evicts some of its own), then while it
// holds more than MaxBytes, none the batch added to (they are at the back of the lru list); if the
// batch's own groups exceed MaxBytes, the one holding the most bytes drops its oldest records, then
// its oldest starts, until t is within budget. Called with t.mu held.
func (s *Recipes) enforceBounds(t *recipeTenant, batch map[string]*batchGroup) {
	for len(t.traces) > MaxTraceGroups {
		t.removeGroup(t.lru.Front().Value.(*traceGroup))
	}
	for e := t.lru.Front(); e != nil && t.bytes > s.opts.MaxBytes; e = t.lru.Front() {
		g := e.Value.(*traceGroup)
		if bg := batch[g.trace]; bg != nil && bg.add && bg.g == g {
			break // only the batch's groups are left
		}
		t.removeGroup(g)
	}
	for t.bytes > s.opts.MaxBytes {
		var big *traceGroup
		for e := t.lru.Back(); e != nil; e = e.Prev() { // the batch's groups, the last touched first
			if g := e.Value.(*traceGroup); big == nil || g.bytes > big.bytes {
				big = g
			}
		}
		switch {
		case big == nil || big.bytes <= 0:
			return // nothing left to drop (cannot happen while the sizes add up)
		case big.n > 0:
			t.dropRecord(big)
		default:
			t.dropStart(big)
		}
	}
}

// touch returns the group of trace (g, or a new one if g is nil), marked as changed now. Called with
// t.mu held.
func (s *Recipes) touch(t *recipeTenant, trace string, g *traceGroup, now time.Time) *traceGroup {
	if g == nil {
		g = &traceGroup{trace: trace, ids: make(map[string]int), inflight: make(map[string]*list.Element)}
		g.elem = t.lru.PushBack(g)
		t.traces[trace] = g
	} else {
		t.lru.MoveToBack(g.elem)
	}
	g.changed = now
	return g
}

// recorded reports whether the group keeps a record of that id.
func (g *traceGroup) recorded(id string) bool {
	arrival, ok := g.ids[id]
	return ok && arrival > g.dropped
}

// knows reports whether a start of that id would add nothing: the request is in flight or recorded.
func (g *traceGroup) knows(id string) bool { return g.inflight[id] != nil || g.recorded(id) }

func (t *recipeTenant) grow(g *traceGroup, n int64) {
	g.bytes += n
	t.bytes += n
}

// endStart takes the request of that id out of flight, if it is in flight.
func (t *recipeTenant) endStart(g *traceGroup, id string) {
	if e := g.inflight[id]; e != nil {
		delete(g.inflight, id)
		g.starts.Remove(e)
		t.grow(g, -startSize(id))
	}
}

// dropStart forgets the oldest in-flight start of g, which has one.
func (t *recipeTenant) dropStart(g *traceGroup) {
	t.endStart(g, g.starts.Front().Value.(string))
}

// addRecord keeps rec as the newest record of g, dropping the oldest if g keeps max already.
func (t *recipeTenant) addRecord(g *traceGroup, rec *api.Record, limit int) {
	if g.n >= limit {
		t.dropRecord(g)
	}
	if g.n == len(g.records) { // full: grow, oldest first
		grown := make([]api.Record, min(max(2*g.n, 16), limit))
		g.copyRecords(grown)
		g.records, g.head = grown, 0
	}
	g.records[(g.head+g.n)%len(g.records)] = *rec
	g.n++
	g.ids[rec.ID] = g.dropped + g.n
	t.grow(g, recordSize(rec))
	if len(g.ids) >= 2*g.n+64 { // forget the ids of dropped records
		g.ids = make(map[string]int, g.n)
		for i := range g.n {
			g.ids[g.records[(g.head+i)%len(g.records)].ID] = g.dropped + i + 1
		}
	}
}

// dropRecord drops the oldest record of g, which has one, and counts it in Dropped.
func (t *recipeTenant) dropRecord(g *traceGroup) {
	rec := &g.records[g.head]
	t.grow(g, -recordSize(rec))
	*rec = api.Record{}
	g.head = (g.head + 1) % len(g.records)
	g.n--
	g.dropped++
	if len(g.records) > 64 && g.n < len(g.records)/4 { // emptied by MaxBytes: give the room back
		shrunk := make([]api.Record, len(g.records)/2)
		g.copyRecords(shrunk)
		g.records, g.head = shrunk, 0
	}
}

// copyRecords copies the records g keeps, oldest first, to out, which has room for them.
func (g *traceGroup) copyRecords(out []api.Record) {
	k := copy(out[:g.n], g.records[g.head:])
	copy(out[k:g.n], g.records[:g.n-k])
}

func (g *traceGroup) counts() store.RecordCounts {
	return store.RecordCounts{Records: g.n, Dropped: g.dropped, InFlight: len(g.inflight), Changes: g.changes}
}

// Records implements store.Recipes.
func (s *Recipes) Records(ctx context.Context, ns, trace string) ([]api.Record, store.RecordCounts, error) {
	if err := ctx.Err(); err != nil {
		return nil, store.RecordCounts{}, err
	}
	now := s.clock()
	t := s.lockTenant(ns, false)
	if t == nil {
		return []api.Record{}, store.RecordCounts{}, nil
	}
	defer t.mu.Unlock()
	g := s.group(t, trace, now)
	if g == nil {
		return []api.Record{}, store.RecordCounts{}, nil
	}
	out := make([]api.Record, g.n)
	g.copyRecords(out)
	return out, g.counts(), nil
}

// Counts implements store.Recipes.
func (s *Recipes) Counts(ctx context.Context, ns, trace string) (store.RecordCounts, error) {
	if err := ctx.Err(); err != nil {
		return store.RecordCounts{}, err
	}
	now := s.clock()
	t := s.lockTenant(ns, false)
	if t == nil {
		return store.RecordCounts{}, nil
	}
	defer t.mu.Unlock()
	if g := s.group(t, trace, now); g != nil {
		return g.counts(), nil
	}
	return store.RecordCounts{}, nil
}

// Ping implements store.Recipes; memory is always reachable.
func (s *Recipes) Ping(context.Context) error { return nil }

// Close stops the janitor. The store's data stays readable; closing twice is harmless.
func (s *Recipes) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
	})
	return nil
}
