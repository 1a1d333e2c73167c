package memory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/watch"
)

// Rules is the embedded store.Rules: rules live in memory, and with a directory every change is
// written to a file there and fsynced before Change returns, so an acknowledged change survives a
// crash or a kill -9. Reads never wait: each namespace's rules are an immutable snapshot swapped in
// after its file is on disk.
type Rules struct {
	dir  string
	lock *os.File // the data directory's lock, held while the store is open
	hub  *watch.Hub

	mu      sync.Mutex
	tenants map[string]*ruleTenant
}

var _ store.Rules = (*Rules)(nil)

type ruleTenant struct {
	mu  sync.Mutex // serialises writers of this namespace
	set atomic.Pointer[store.RuleSet]
}

// ruleFile is the on-disk form of one namespace.
type ruleFile struct {
	Namespace string     `json:"namespace"`
	Revision  int64      `json:"revision"`
	Rules     []api.Rule `json:"rules"`
}

// NewRules returns a store that persists to dir (created if missing), loading what is there. An
// empty dir keeps rules in memory only. The directory is locked while the store is open: a second
// process on the same directory would overwrite the first one's files, so it is refused.
func NewRules(dir string) (*Rules, error) {
	s := &Rules{dir: dir, hub: watch.NewHub(), tenants: map[string]*ruleTenant{}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rules data directory %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	files, err := filepath.Glob(filepath.Join(dir, "rules-*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read rules file: %w", err)
		}
		var rf ruleFile
		if err := json.Unmarshal(data, &rf); err != nil || rf.Namespace == "" || filepath.Base(f) != fileName(rf.Namespace) {
			return nil, fmt.Errorf("rules file %s is damaged (%v): restore it from a backup or remove it, which drops that tenant's rules", f, err)
		}
		store.SortRules(rf.Rules)
		t := &ruleTenant{}
		t.set.Store(&store.RuleSet{Rules: rf.Rules, Revision: rf.Revision})
		s.tenants[rf.Namespace] = t
		s.hub.Publish(rf.Namespace, uint64(rf.Revision))
	}
	// Temporary files of writes a crash interrupted were never acknowledged.
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".rules-*.tmp")); len(tmps) > 0 {
		for _, tmp := range tmps {
			_ = os.Remove(tmp)
		}
	}
	ok = true
	return s, nil
}

// lockDir takes an exclusive lock on dir/LOCK, without waiting.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("rules data directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("rules data directory %s is in use by another a8 process; give each controller its own --data_dir (or share rules through --database_type redis)", dir)
		}
		return nil, fmt.Errorf("lock rules data directory %s: %w", dir, err)
	}
	return f, nil
}

// fileName is a namespace's file: a hash of its name, so that any name makes a safe, short file name.
func fileName(ns string) string {
	sum := sha256.Sum256([]byte(ns))
	return "rules-" + hex.EncodeToString(sum[:16]) + ".json"
}

var emptyRuleSet = &store.RuleSet{Rules: []api.Rule{}}

func (s *Rules) tenant(ns string) *ruleTenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[ns]
	if t == nil {
		t = &ruleTenant{}
		t.set.Store(emptyRuleSet)
		s.tenants[ns] = t
	}
	return t
}

func (s *Rules) current(ns string) *store.RuleSet {
	s.mu.Lock()
	t := s.tenants[ns]
	s.mu.Unlock()
	if t == nil {
		return emptyRuleSet
	}
	return t.set.Load()
}

// Get implements store.Rules.
func (s *Rules) Get(ctx context.Context, ns string) (store.RuleSet, error) {
	if err := ctx.Err(); err != nil {
		return store.RuleSet{}, err
	}
	return *s.current(ns), nil
}

// Change implements store.Rules.
func (s *Rules) Change(ctx context.Context, ns string, ch store.RuleChange) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t := s.tenant(ns)
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.set.Load()

	byID := make(map[string]int, len(cur.Rules))
	for i := range cur.Rules {
		byID[cur.Rules[i].ID] = i
	}
	if ch.Check != nil {
		if err := ch.Check(cur.Rules); err != nil {
			return 0, err
		}
	}
	if ch.MustExist {
		var missing []string
		for _, r := range ch.Put {
			if _, ok := byID[r.ID]; !ok {
				missing = append(missing, r.ID)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return 0, &store.MissingRulesError{IDs: missing}
		}
	}
	replaced := make(map[string]bool, len(ch.Put))
	for _, r := range ch.Put {
		replaced[r.ID] = true
	}
	next := make([]api.Rule, 0, len(cur.Rules)+len(ch.Put))
	for i := range cur.Rules {
		r := &cur.Rules[i]
		if replaced[r.ID] || (ch.Delete != nil && ch.Delete(r)) {
			continue
		}
		next = append(next, *r)
	}
	next = append(next, ch.Put...)
	store.SortRules(next)
	set := &store.RuleSet{Rules: next, Revision: cur.Revision + 1}
	if err := s.persist(ns, set); err != nil {
		return 0, err
	}
	t.set.Store(set)
	s.hub.Publish(ns, uint64(set.Revision))
	return set.Revision, nil
}

// persist writes a namespace's rules durably: a temporary file, fsynced, renamed over the old one,
// and the directory fsynced so that the rename itself survives a crash.
func (s *Rules) persist(ns string, set *store.RuleSet) (err error) {
	if s.dir == "" {
		return nil
	}
	data, err := json.Marshal(ruleFile{Namespace: ns, Revision: set.Revision, Rules: set.Rules})
	if err != nil {
		return fmt.Errorf("encode rules: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, ".rules-*.tmp")
	if err != nil {
		return fmt.Errorf("%w: write rules to %s: %w", store.ErrUnavailable, s.dir, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.dir, fileName(ns)))
	}
	if err != nil {
		return fmt.Errorf("%w: write rules to %s: %w", store.ErrUnavailable, s.dir, err)
	}
	// The new file is in place: the change is made, whatever happens next. Syncing the directory
	// makes the rename itself durable; should that fail (rare: the file system is failing), the
	// change stands, as the file already says it does.
	_ = syncDir(s.dir)
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !strings.Contains(err.Error(), "invalid argument") {
		return err
	}
	return nil
}

// Wait implements store.Rules.
func (s *Rules) Wait(ctx context.Context, ns string, after int64) (int64, error) {
	idx, err := s.hub.Wait(ctx, ns, uint64(max(after, 0)))
	return int64(idx), err
}

// Ping implements store.Rules: the data directory must be writable.
func (s *Rules) Ping(context.Context) error {
	if s.dir == "" {
		return nil
	}
	f, err := os.CreateTemp(s.dir, ".rules-ping-*.tmp")
	if err != nil {
		return fmt.Errorf("%w: rules data directory %s is not writable: %w", store.ErrUnavailable, s.dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// Close releases the data directory.
func (s *Rules) Close() error {
	if s.lock != nil {
		return s.lock.Close()
	}
	return nil
}
