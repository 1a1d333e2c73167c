package registry

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/a8fabric/a8/internal/store"
)

// Changes watches (a8's extension of the list API): GET /api/v1/instances?index=N&changes=true.
//
// A blocking query answered with the whole list costs the registry a list and an encoding per
// watcher per change, and each watcher a decoding: a sidecar watches its whole tenant, and at
// 100,000 instances that is 21.5 MiB, every time anything in the tenant changes, for every sidecar.
// With changes=true the answer holds only what changed since N: the instances that were added or
// changed, as they are now ("instances"), and the ids of those that went away or no longer match the
// query ("removed"), with "changes": true. The client applies them to the list it holds (the Go
// client does so by itself). When the registry cannot say what changed since N (N is older than
// what it keeps, or the store was reset), it answers with the whole list, without "changes".
//
// The registry keeps, per namespace watched this way, a log: the namespace's instances at the log's
// head index and, for each of the last maxLogEntries indexes it saw, the ids that changed. A
// goroutine follows the store (Wait, List, diff), so that one list serves every watcher, and
// replicas sharing a Redis store each keep their own log, right whoever made the change. A log no
// one asked for in logIdle stops.

const (
	maxLogEntries = 1024
	maxLogIDs     = 1 << 17 // ids over all entries: a burst of changes to a huge tenant ends the log's reach sooner
	logIdle       = 5 * time.Minute
)

type changeLogs struct {
	store store.Instances
	ctx   context.Context // ends every log's goroutine
	mu    sync.Mutex
	logs  map[string]*changeLog
	wg    sync.WaitGroup
}

// changeLog is one namespace's log. Its fields are guarded by mu.
type changeLog struct {
	mu       sync.Mutex
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

// get returns the namespace's log, starting it if needed.
func (cl *changeLogs) get(ns string) *changeLog {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	l := cl.logs[ns]
	if l != nil {
		l.mu.Lock()
		l.lastUse = time.Now()
		l.mu.Unlock()
		return l
	}
	l = &changeLog{advanced: make(chan struct{}), lastUse: time.Now()}
	cl.logs[ns] = l
	cl.wg.Go(func() { cl.follow(ns, l) })
	return l
}

// wait stops every log's goroutine and waits for them (the context given to newChangeLogs must
// have ended).
func (cl *changeLogs) wait() { cl.wg.Wait() }

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
		l.base, l.entries, l.ids = list.Index, nil, 0
		l.ready = true
	case list.Index == l.head:
		l.snap = list.Instances // the same index: nothing to tell watchers
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

// errNoChanges says the log cannot answer from the index asked: the whole list is the answer.
var errNoChanges = errors.New("registry: the changes since this index are no longer kept")

// since waits until the log's head passes after (or ctx ends), then returns the instances that
// changed since after and match, and the ids that went away or no longer match, at the head index.
// With nothing new when ctx ends, both are empty and index is after. errNoChanges: the log cannot
// tell (after is older than it keeps, or newer than its head when ctx ends, as after a store reset).
func (l *changeLog) since(ctx context.Context, after uint64, match func(*store.Instance) bool) (set []store.Instance, removed []string, index uint64, err error) {
	for {
		l.mu.Lock()
		if l.stopped || (l.ready && after < l.base) {
			l.mu.Unlock()
			return nil, nil, 0, errNoChanges
		}
		if l.ready && l.head > after {
			break // with l.mu held
		}
		adv := l.advanced
		l.mu.Unlock()
		select {
		case <-adv:
			continue
		case <-ctx.Done():
		}
		l.mu.Lock()
		ready, head := l.ready, l.head
		l.mu.Unlock()
		if ready && head == after {
			return nil, nil, after, nil // nothing new
		}
		return nil, nil, 0, errNoChanges
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
