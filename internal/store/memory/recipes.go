package memory

import (
	"cmp"
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
// Bounds, per namespace: at most MaxTraceGroups (1,000) trace groups, each holding at most
// opts.MaxRecords records (default 100,000; the oldest by arrival are dropped and counted in
// Dropped) and at most opts.MaxRecords in-flight request ids (the oldest starts are dropped, not
// counted). A recipe or a trace group not changed for opts.Retention (default 24h) is gone: reads
// and appends check that as they go, and a janitor goroutine, started by NewRecipes and stopped by
// Close, sweeps every namespace every Retention/2 (between 10ms and one minute), so that groups
// nobody reads again do not hold memory. Recipes themselves are few (the controller creates them
// on its users' requests) and are bounded by retention alone.
//
// Within a batch, starts are applied before records, so a request that began and ended within one
// batch is not left in flight. A start delivered in a later batch than its record (sidecars deliver
// in order, so only a misbehaving one does that) stays in flight until the bound drops it or its
// group expires.
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
	recipes map[string]*storedRecipe
	traces  map[string]*traceGroup
	lru     list.List // of *traceGroup, least recently changed first
}

type storedRecipe struct {
	recipe  store.Recipe
	changed time.Time
}

// traceGroup holds the records of one trace value.
type traceGroup struct {
	trace   string
	elem    *list.Element // in recipeTenant.lru
	changed time.Time
	changes int64
	dropped int

	// records is a ring once full: the oldest record is at head.
	records []api.Record
	head    int

	inflight map[string]*list.Element // id -> its element in starts
	starts   list.List                // of string (ids), oldest start first
}

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

// sweep removes every expired recipe and trace group, and the namespaces left empty.
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
		for id, r := range t.recipes {
			if s.expired(r.changed, now) {
				delete(t.recipes, id)
			}
		}
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
			t = &recipeTenant{recipes: make(map[string]*storedRecipe), traces: make(map[string]*traceGroup)}
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
	now := s.clock()
	t := s.lockTenant(ns, true)
	defer t.mu.Unlock()
	if old := t.recipes[r.ID]; old != nil && !s.expired(old.changed, now) {
		return fmt.Errorf("recipe %q: %w", r.ID, store.ErrExists)
	}
	t.recipes[r.ID] = &storedRecipe{recipe: cloneRecipe(r), changed: now}
	return nil
}

// Recipe implements store.Recipes.
func (s *Recipes) Recipe(ctx context.Context, ns, id string) (store.Recipe, error) {
	if err := ctx.Err(); err != nil {
		return store.Recipe{}, err
	}
	now := s.clock()
	t := s.lockTenant(ns, false)
	if t == nil {
		return store.Recipe{}, fmt.Errorf("recipe %q: %w", id, store.ErrNotFound)
	}
	defer t.mu.Unlock()
	r := t.recipes[id]
	if r != nil && s.expired(r.changed, now) {
		delete(t.recipes, id)
		r = nil
	}
	if r == nil {
		return store.Recipe{}, fmt.Errorf("recipe %q: %w", id, store.ErrNotFound)
	}
	return cloneRecipe(r.recipe), nil
}

// ListRecipes implements store.Recipes: oldest first by Created, then by id.
func (s *Recipes) ListRecipes(ctx context.Context, ns string) ([]store.Recipe, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.clock()
	out := []store.Recipe{}
	t := s.lockTenant(ns, false)
	if t == nil {
		return out, nil
	}
	for id, r := range t.recipes {
		if s.expired(r.changed, now) {
			delete(t.recipes, id)
			continue
		}
		out = append(out, cloneRecipe(r.recipe))
	}
	t.mu.Unlock()
	sortRecipes(out)
	return out, nil
}

// sortRecipes puts recipes oldest first by Created, then by id.
func sortRecipes(rs []store.Recipe) {
	slices.SortFunc(rs, func(a, b store.Recipe) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
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
	found := false
	if r := t.recipes[id]; r != nil {
		found = !s.expired(r.changed, now)
		delete(t.recipes, id)
	}
	if g := s.group(t, id, now); g != nil {
		t.removeGroup(g)
		found = true
	}
	if !found {
		return fmt.Errorf("recipe %q: %w", id, store.ErrNotFound)
	}
	return nil
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
	touched := make(map[*traceGroup]bool, 1)
	// Starts first, then records: a batch holds the starts of requests that may end in the same
	// batch, and their records must take them out of flight.
	for i := range b.Started {
		st := &b.Started[i]
		if st.TraceValue == "" {
			continue
		}
		g := s.touch(t, st.TraceValue, now, touched)
		if g.inflight[st.ID] != nil {
			continue // a repeated start keeps its place
		}
		g.inflight[st.ID] = g.starts.PushBack(st.ID)
		if len(g.inflight) > s.opts.MaxRecords {
			oldest := g.starts.Front()
			delete(g.inflight, oldest.Value.(string))
			g.starts.Remove(oldest)
		}
	}
	for i := range b.Records {
		rec := &b.Records[i]
		if rec.TraceValue == "" {
			continue
		}
		g := s.touch(t, rec.TraceValue, now, touched)
		if e := g.inflight[rec.ID]; e != nil {
			delete(g.inflight, rec.ID)
			g.starts.Remove(e)
		}
		if len(g.records) < s.opts.MaxRecords {
			g.records = append(g.records, *rec)
			continue
		}
		g.records[g.head] = *rec
		g.head = (g.head + 1) % len(g.records)
		g.dropped++
	}
	for g := range touched {
		g.changes++
	}
	return nil
}

// touch returns the group of trace, created if need be, marked as changed now. Called with t.mu held.
func (s *Recipes) touch(t *recipeTenant, trace string, now time.Time, touched map[*traceGroup]bool) *traceGroup {
	g := s.group(t, trace, now)
	if g == nil {
		for len(t.traces) >= MaxTraceGroups {
			t.removeGroup(t.lru.Front().Value.(*traceGroup))
		}
		g = &traceGroup{trace: trace, inflight: make(map[string]*list.Element)}
		g.elem = t.lru.PushBack(g)
		t.traces[trace] = g
	} else if !touched[g] {
		t.lru.MoveToBack(g.elem)
	}
	g.changed = now
	touched[g] = true
	return g
}

func (g *traceGroup) counts() store.RecordCounts {
	return store.RecordCounts{Records: len(g.records), Dropped: g.dropped, InFlight: len(g.inflight), Changes: g.changes}
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
	out := make([]api.Record, 0, len(g.records))
	out = append(out, g.records[g.head:]...)
	out = append(out, g.records[:g.head]...)
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
