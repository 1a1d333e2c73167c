// Package watch is the in-process half of a8's blocking queries: a Hub keeps the latest known change
// index of each key (a tenant) and wakes every waiter when it rises. Stores publish to it; the Redis
// store feeds it from pub/sub so that a change made through one replica wakes waiters on all of them.
package watch

import (
	"context"
	"sync"
)

// Hub broadcasts index changes per key. The zero value is not usable; call NewHub.
type Hub struct {
	mu     sync.Mutex
	topics map[string]*topic
}

type topic struct {
	index   uint64
	changed chan struct{} // closed and replaced when index changes
	waiters int
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{topics: make(map[string]*topic)}
}

func (h *Hub) topic(key string) *topic {
	t, ok := h.topics[key]
	if !ok {
		t = &topic{changed: make(chan struct{})}
		h.topics[key] = t
	}
	return t
}

// Publish records that key's index is now index. An index at or below the known one is ignored, so
// late or duplicate notifications are harmless.
func (h *Hub) Publish(key string, index uint64) {
	h.mu.Lock()
	t := h.topic(key)
	if index > t.index {
		t.index = index
		close(t.changed)
		t.changed = make(chan struct{})
	}
	h.mu.Unlock()
}

// Reset sets key's index to index even if that is lower, waking waiters if it changed. A store uses it
// when its backend's index went backwards (Redis lost its data), so that the hub does not keep
// answering with an index that no longer exists.
func (h *Hub) Reset(key string, index uint64) {
	h.mu.Lock()
	t := h.topic(key)
	if index != t.index {
		t.index = index
		close(t.changed)
		t.changed = make(chan struct{})
	}
	h.mu.Unlock()
}

// Index returns the latest index published for key (0 if none).
func (h *Hub) Index(key string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.topics[key]; ok {
		return t.index
	}
	return 0
}

// Wait blocks until key's index differs from after, or ctx is done, and returns the index it then
// knows. An index below after (the store was reset) returns at once, so a client holding an index
// from before a restart is not stuck. On ctx expiry it returns the current index and ctx's error.
func (h *Hub) Wait(ctx context.Context, key string, after uint64) (uint64, error) {
	h.mu.Lock()
	t := h.topic(key)
	t.waiters++
	defer func() {
		// Forget a topic nobody waits on and nothing was ever published to, so that watches on
		// made-up keys (tenants without data) do not accumulate.
		t.waiters--
		if t.waiters == 0 && t.index == 0 && h.topics[key] == t {
			delete(h.topics, key)
		}
		h.mu.Unlock()
	}()
	for {
		if t.index != after {
			return t.index, nil
		}
		ch := t.changed
		h.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		h.mu.Lock()
		if err != nil {
			return t.index, err
		}
	}
}
