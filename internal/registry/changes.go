package registry

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/a8fabric/a8/internal/store"
)

// Changes watches (a8's extension of the list API).
//
// A blocking query answered with the whole list costs the registry a list and an encoding per
// watcher per change, and each watcher a decoding: a sidecar watches its whole tenant, and at
// 100,000 instances that is 21.5 MiB, every time anything in the tenant changes, for every sidecar.
// With changes=true the registry answers from a log it keeps per namespace:
//
//   - without index (or with an index and epoch the log cannot answer from): the whole list, as the
//     log has it, with "changes": false and the log's "epoch";
//   - with index=N&epoch=E from an earlier answer of the same log: what changed since N, "changes":
//     true: the instances added or changed, as they are now ("instances"), and the ids of those that
//     went away or no longer match the query ("removed").
//
// Every list a changes watcher holds is one of the log's own lists, each named by its index, so
// "what changed since N" is exact: the log diffs its successive lists. The log takes a list when the
// store's index moves (Wait, List), one list per change however many watch; a list taken at the
// same index as the last one is ignored (the store hides an expired instance before the reaper
// raises the index: the change is told when it does). The epoch is new with every log (a restarted
// registry, another replica, a log stopped after logIdle without a changes query), so an index of
// another log is never mistaken for one of this log's.

const (
	maxLogEntries = 1024
	maxLogIDs     = 1 << 17          // ids over all entries: a burst of changes to a huge tenant ends the log's reach sooner
	logIdle       = 10 * time.Minute // longer than the longest wait (5m)
)

type changeLogs struct {
	store  store.Instances
	ctx    context.Context // ends every log's goroutine
	mu     sync.Mutex
	logs   map[string]*changeLog
	closed bool // no log starts any more
	wg     sync.WaitGroup
}

// changeLog is one namespace's log. Its fields are guarded by mu.
type changeLog struct {
	mu       sync.Mutex
	epoch    string           // names the log's lists: indexes of another epoch mean nothing here
	ready    bool             // the first list arrived
	base     uint64           // the oldest index the log can answer from
	head     uint64           // the index of snap
	snap     []store.Instance // the namespace's instances at head, sorted by service name, then id
	entries  []logEntry       // ascending index, all above base
	ids      int              // ids over entries
	advanced chan struct{}    // closed when head moves (or the log stops), then replaced
	lastUse  time.Time
	stopped  bool
}

type logEntry struct {
	index uint64
	keys  []instanceKey // the instances that changed, as before and as after when they moved
}

type instanceKey struct{ service, id string }

func keyOf(in *store.Instance) instanceKey { return instanceKey{in.ServiceName, in.ID} }

func compareKeys(a, b instanceKey) int {
	return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.id, b.id))
}

func newChangeLogs(ctx context.Context, st store.Instances) *changeLogs {
	return &changeLogs{store: st, ctx: ctx, logs: map[string]*changeLog{}}
}

// get returns the namespace's log, starting it if needed; nil once the registry is closing.
func (cl *changeLogs) get(ns string) *changeLog {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return nil
	}
	l := cl.logs[ns]
	if l != nil {
		l.mu.Lock()
		l.lastUse = time.Now()
		l.mu.Unlock()
		return l
	}
	l = &changeLog{epoch: newEpoch(), advanced: make(chan struct{}), lastUse: time.Now()}
	cl.logs[ns] = l
	cl.wg.Go(func() { cl.follow(ns, l) })
	return l
}

// close keeps new logs from starting, and waits for every log's goroutine to end (the context given
// to newChangeLogs must have ended, or must end).
func (cl *changeLogs) close() {
	cl.mu.Lock()
	cl.closed = true
	cl.mu.Unlock()
	cl.wg.Wait()
}

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// follow keeps l in step with the store until the registry stops or no one asks for l.
func (cl *changeLogs) follow(ns string, l *changeLog) {
	defer func() {
		cl.mu.Lock()
		if cl.logs[ns] == l {
			delete(cl.logs, ns)
		}
		cl.mu.Unlock()
		l.mu.Lock()
		l.stopped = true
		close(l.advanced)
		l.mu.Unlock()
	}()
	backoff := 100 * time.Millisecond
	for cl.ctx.Err() == nil {
		l.mu.Lock()
		idle, head, ready := time.Since(l.lastUse) > logIdle, l.head, l.ready
		l.mu.Unlock()
		if idle {
			return
		}
		if ready {
			wctx, cancel := context.WithTimeout(cl.ctx, time.Minute)
			_, err := cl.store.Wait(wctx, ns, head)
			cancel()
			if cl.ctx.Err() != nil {
				return
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				cl.pause(&backoff)
				continue
			}
		}
		list, err := cl.store.List(cl.ctx, ns, "")
		if err != nil {
			if cl.ctx.Err() != nil {
				return
			}
			cl.pause(&backoff) // watchers meanwhile get whole lists, or the store's error
			continue
		}
		backoff = 100 * time.Millisecond
		l.advance(list)
	}
}

func (cl *changeLogs) pause(backoff *time.Duration) {
	select {
	case <-cl.ctx.Done():
	case <-time.After(*backoff):
	}
	*backoff = min(2**backoff, 5*time.Second)
}

// advance takes a new list of the namespace: the instances that differ from the snapshot become an
// entry. Both are sorted the same way, so they are compared in one pass.
func (l *changeLog) advance(list store.InstanceList) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case !l.ready || list.Index < l.head: // the first list, or the store was reset
		if l.ready {
			l.epoch = newEpoch() // the indexes start again: old ones name other lists
		}
		l.base, l.entries, l.ids = list.Index, nil, 0
		l.ready = true
	case list.Index == l.head:
		// The same index, so the same list to watchers: an expired instance the store already hides
		// stays until the reaper raises the index, and the change is told then.
		return
	default:
		var keys []instanceKey
		old, cur := l.snap, list.Instances
		i, j := 0, 0
		for i < len(old) || j < len(cur) {
			var c int
			switch {
			case i == len(old):
				c = 1
			case j == len(cur):
				c = -1
			default:
				c = compareKeys(keyOf(&old[i]), keyOf(&cur[j]))
			}
			switch {
			case c < 0: // gone (or moved to another service)
				keys = append(keys, keyOf(&old[i]))
				i++
			case c > 0: // new (or moved here)
				keys = append(keys, keyOf(&cur[j]))
				j++
			default:
				if !sameInstance(&old[i], &cur[j]) {
					keys = append(keys, keyOf(&cur[j]))
				}
				i++
				j++
			}
		}
		l.entries = append(l.entries, logEntry{index: list.Index, keys: keys})
		l.ids += len(keys)
		for len(l.entries) > maxLogEntries || (l.ids > maxLogIDs && len(l.entries) > 1) {
			l.base = l.entries[0].index // a client at that index or later needs only what follows
			l.ids -= len(l.entries[0].keys)
			l.entries = l.entries[1:]
		}
	}
	l.head, l.snap = list.Index, list.Instances
	close(l.advanced)
	l.advanced = make(chan struct{})
}

// sameInstance compares what a list shows of an instance, less the heartbeat time, which moves
// without a change.
func sameInstance(a, b *store.Instance) bool {
	return a.ServiceName == b.ServiceName && a.Endpoint == b.Endpoint && a.Status == b.Status &&
		a.TTL == b.TTL && slices.Equal(a.Tags, b.Tags) && bytes.Equal(a.Metadata, b.Metadata)
}

// errNoChanges says the log cannot answer from the index and epoch given: the whole list is the
// answer.
var errNoChanges = errors.New("registry: this log cannot tell what changed since this index")

// whole returns the log's list (waiting for its first, until ctx ends), its index and epoch.
func (l *changeLog) whole(ctx context.Context) ([]store.Instance, uint64, string, error) {
	for {
		l.mu.Lock()
		if l.ready {
			defer l.mu.Unlock()
			l.lastUse = time.Now()
			return l.snap, l.head, l.epoch, nil
		}
		adv, stopped := l.advanced, l.stopped
		l.mu.Unlock()
		if stopped {
			return nil, 0, "", errNoChanges
		}
		select {
		case <-adv:
		case <-ctx.Done():
			return nil, 0, "", ctx.Err()
		}
	}
}

// knows reports whether after is the index of one of the log's lists it can still tell changes
// from: its base, or an entry's. l.mu is held.
func (l *changeLog) knows(after uint64) bool {
	if after == l.base {
		return true
	}
	_, found := slices.BinarySearchFunc(l.entries, after, func(e logEntry, i uint64) int { return cmp.Compare(e.index, i) })
	return found
}

// since waits until the log's head passes after (or ctx ends), then returns the instances that
// changed since after and match, and the ids that went away or no longer match, at the head index.
// With nothing new when ctx ends, both are empty and index is after. errNoChanges: epoch is not this
// log's, or after is not the index of one of its lists it still keeps.
func (l *changeLog) since(ctx context.Context, epoch string, after uint64, match func(*store.Instance) bool) (set []store.Instance, removed []string, index uint64, err error) {
	for {
		l.mu.Lock()
		l.lastUse = time.Now()
		if l.stopped || !l.ready || epoch != l.epoch || !l.knows(after) {
			l.mu.Unlock()
			return nil, nil, 0, errNoChanges
		}
		if l.head > after {
			break // with l.mu held
		}
		adv := l.advanced
		l.mu.Unlock()
		select {
		case <-adv:
			continue
		case <-ctx.Done():
			return nil, nil, after, nil // nothing new
		}
	}
	defer l.mu.Unlock()
	seen := map[instanceKey]bool{}
	gone := map[string]bool{}
	// The entries above after, newest first.
	for i := len(l.entries) - 1; i >= 0 && l.entries[i].index > after; i-- {
		for _, k := range l.entries[i].keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			n, found := slices.BinarySearchFunc(l.snap, k, func(in store.Instance, k instanceKey) int { return compareKeys(keyOf(&in), k) })
			if found && match(&l.snap[n]) {
				set = append(set, l.snap[n])
			} else if !gone[k.id] {
				gone[k.id] = true
				removed = append(removed, k.id)
			}
		}
	}
	slices.SortFunc(set, func(a, b store.Instance) int { return compareKeys(keyOf(&a), keyOf(&b)) })
	slices.Sort(removed)
	return set, removed, l.head, nil
}
