package watch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestHub_WaitReturnsWhenIndexDiffers(t *testing.T) {
	h := NewHub()
	h.Publish("a", 3)
	for _, after := range []uint64{0, 2, 7} {
		got, err := h.Wait(context.Background(), "a", after)
		if err != nil || got != 3 {
			t.Errorf("Wait(after=%d) = %d, %v; want 3, nil", after, got, err)
		}
	}
}

func TestHub_WaitWakesAllWaiters(t *testing.T) {
	h := NewHub()
	h.Publish("a", 1)
	const n = 50
	var wg sync.WaitGroup
	got := make([]uint64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = h.Wait(context.Background(), "a", 1)
		}()
	}
	h.Publish("b", 9) // another key wakes nobody waiting on "a"
	h.Publish("a", 1) // not a rise
	h.Publish("a", 2)
	wg.Wait()
	for i, g := range got {
		if g != 2 {
			t.Fatalf("waiter %d got %d, want 2", i, g)
		}
	}
}

func TestHub_WaitHonoursContext(t *testing.T) {
	h := NewHub()
	h.Publish("a", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	got, err := h.Wait(ctx, "a", 4)
	if !errors.Is(err, context.DeadlineExceeded) || got != 4 {
		t.Fatalf("Wait = %d, %v; want 4, deadline exceeded", got, err)
	}
}

func TestHub_PublishIgnoresLowerIndex(t *testing.T) {
	h := NewHub()
	h.Publish("a", 5)
	h.Publish("a", 2)
	if got := h.Index("a"); got != 5 {
		t.Fatalf("Index = %d, want 5", got)
	}
}

func TestHub_ResetLowersAndWakes(t *testing.T) {
	h := NewHub()
	h.Publish("a", 9)
	done := make(chan uint64, 1)
	go func() { idx, _ := h.Wait(context.Background(), "a", 9); done <- idx }()
	h.Reset("a", 2)
	if got := <-done; got != 2 {
		t.Fatalf("waiter woke with %d, want 2", got)
	}
	h.Publish("a", 3)
	if got := h.Index("a"); got != 3 {
		t.Fatalf("Index = %d after Reset(2), Publish(3)", got)
	}
}

func TestHub_ForgetsIdleEmptyTopics(t *testing.T) {
	h := NewHub()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, _ = h.Wait(ctx, "nobody", 0)
	h.mu.Lock()
	n := len(h.topics)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d topics kept after a watch on a key with no data", n)
	}
}
