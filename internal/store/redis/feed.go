package redis

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/a8fabric/a8/internal/watch"
)

// feed is the cross-replica half of a store's watches: every change is published on a channel as
// "<index> <namespace>", and each replica's feed turns those messages into hub notifications. The
// index itself lives in a Redis key per namespace, which is the truth the feed re-reads when a wait
// starts and every recheck interval (a message can be lost while the subscription reconnects).
type feed struct {
	client   goredis.UniversalClient
	channel  string
	indexKey func(ns string) string
	recheck  time.Duration
	log      *slog.Logger
	hub      *watch.Hub

	stop context.CancelFunc
	done sync.WaitGroup
}

func newFeed(client goredis.UniversalClient, channel string, indexKey func(string) string, recheck time.Duration, log *slog.Logger) *feed {
	if recheck <= 0 {
		recheck = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &feed{client: client, channel: channel, indexKey: indexKey, recheck: recheck, log: log, hub: watch.NewHub()}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	ps := client.Subscribe(ctx, channel)
	// Wait for the subscription to be in place, so that changes made right after start are not
	// missed; if Redis is down now, go on: the subscription is retried in the background.
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := ps.Receive(rctx); err != nil {
		log.Warn("change subscription not ready; watches fall back to rechecking", "channel", channel, "error", err)
	}
	rcancel()
	f.done.Add(1)
	go func() {
		defer f.done.Done()
		f.listen(ctx, ps)
	}()
	return f
}

// message is the payload published after a change.
func message(index int64, ns string) string { return strconv.FormatInt(index, 10) + " " + ns }

func (f *feed) listen(ctx context.Context, ps *goredis.PubSub) {
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			idxStr, ns, found := strings.Cut(msg.Payload, " ")
			idx, err := strconv.ParseUint(idxStr, 10, 64)
			if !found || err != nil {
				f.log.Warn("ignoring malformed change message", "channel", msg.Channel, "payload", msg.Payload)
				continue
			}
			f.hub.Publish(ns, idx)
		}
	}
}

func (f *feed) index(ctx context.Context, ns string) (uint64, error) {
	v, err := f.client.Get(ctx, f.indexKey(ns)).Uint64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, storeErr(ctx, "read index", err)
	}
	return v, nil
}

// syncIndex reads ns's index from Redis and brings the hub to it. An index below the hub's is either
// a read that raced a change the hub already heard of, or Redis going backwards (it lost its data,
// or a lagging replica took over). A second read tells them apart: after a race it is at least the
// hub's; after a loss it is still below, and the hub is reset so watchers do not spin on an index
// that no longer exists.
func (f *feed) syncIndex(ctx context.Context, ns string) (uint64, error) {
	idx, err := f.index(ctx, ns)
	if err != nil {
		return 0, err
	}
	if h := f.hub.Index(ns); idx < h {
		if idx, err = f.index(ctx, ns); err != nil {
			return 0, err
		}
		if idx < h {
			f.log.Warn("index went backwards in Redis; did Redis lose its data?", "channel", f.channel, "namespace", ns, "was", h, "now", idx)
			f.hub.Reset(ns, idx)
			return idx, nil
		}
	}
	f.hub.Publish(ns, idx)
	return idx, nil
}

// wait blocks until ns's index differs from after or ctx ends (see store.Instances.Wait).
func (f *feed) wait(ctx context.Context, ns string, after uint64) (uint64, error) {
	for {
		idx, err := f.syncIndex(ctx, ns)
		if err != nil {
			if ctx.Err() != nil {
				return after, ctx.Err()
			}
			return 0, err
		}
		if idx != after {
			return idx, nil
		}
		wctx, cancel := context.WithTimeout(ctx, f.recheck)
		idx, err = f.hub.Wait(wctx, ns, after)
		cancel()
		if err == nil {
			return idx, nil
		}
		if ctx.Err() != nil {
			return idx, ctx.Err()
		}
	}
}

func (f *feed) close() {
	f.stop()
	f.done.Wait()
}
