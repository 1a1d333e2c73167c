package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
)

// Rules is the Redis store.Rules. Per namespace (escaped with KeyPart):
//
//	<prefix>:rules:{ns}:rules     hash  rule id -> rule JSON
//	<prefix>:rules:{ns}:revision  int   the revision, INCR on every change
//	<prefix>:rules:changes        pub/sub channel, "<revision> <ns>" after every change
//
// A change is an optimistic transaction: WATCH the revision, read what the change needs, then
// MULTI/EXEC the writes, the INCR and the PUBLISH together; if another replica changed the namespace
// meanwhile, EXEC fails and the change is computed again on the new state.
type Rules struct {
	client  goredis.UniversalClient
	prefix  string
	channel string
	feed    *feed
}

var _ store.Rules = (*Rules)(nil)

// RulesOptions configure the Redis rules store.
type RulesOptions struct {
	// Prefix starts every key and channel name; default "a8".
	Prefix string
	// Recheck is how often a waiting watch re-reads the revision (see InstancesOptions). Default 5s.
	Recheck time.Duration
	Logger  *slog.Logger
}

// NewRules returns a rules store on client and subscribes to its change channel. Close stops the
// subscription; the client stays open.
func NewRules(client goredis.UniversalClient, opts RulesOptions) *Rules {
	if opts.Prefix == "" {
		opts.Prefix = "a8"
	}
	s := &Rules{client: client, prefix: opts.Prefix + ":rules:", channel: opts.Prefix + ":rules:changes"}
	s.feed = newFeed(client, s.channel, func(ns string) string { return s.revisionKey(ns) }, opts.Recheck, opts.Logger)
	return s
}

func (s *Rules) rulesKey(ns string) string    { return s.prefix + "{" + KeyPart(ns) + "}:rules" }
func (s *Rules) revisionKey(ns string) string { return s.prefix + "{" + KeyPart(ns) + "}:revision" }

// Get implements store.Rules.
func (s *Rules) Get(ctx context.Context, ns string) (store.RuleSet, error) {
	var all *goredis.MapStringStringCmd
	var rev *goredis.StringCmd
	_, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		all = p.HGetAll(ctx, s.rulesKey(ns))
		rev = p.Get(ctx, s.revisionKey(ns))
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return store.RuleSet{}, storeErr(ctx, "get rules", err)
	}
	rules, err := decodeRules(all.Val())
	if err != nil {
		return store.RuleSet{}, err
	}
	revision, _ := strconv.ParseInt(rev.Val(), 10, 64)
	return store.RuleSet{Rules: rules, Revision: revision}, nil
}

func decodeRules(m map[string]string) ([]api.Rule, error) {
	out := make([]api.Rule, 0, len(m))
	for id, doc := range m {
		var r api.Rule
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, fmt.Errorf("rule %q in Redis is not valid JSON: %w", id, err)
		}
		out = append(out, r)
	}
	store.SortRules(out)
	return out, nil
}

// Change implements store.Rules.
func (s *Rules) Change(ctx context.Context, ns string, ch store.RuleChange) (int64, error) {
	rulesKey, revKey := s.rulesKey(ns), s.revisionKey(ns)
	put := make([]any, 0, 2*len(ch.Put))
	for i := range ch.Put {
		doc, err := json.Marshal(&ch.Put[i])
		if err != nil {
			return 0, fmt.Errorf("encode rule %q: %w", ch.Put[i].ID, err)
		}
		put = append(put, ch.Put[i].ID, doc)
	}
	var revision int64
	txn := func(tx *goredis.Tx) error {
		cur, err := tx.Get(ctx, revKey).Int64()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
		var del []string
		if ch.Delete != nil || ch.MustExist || ch.Check != nil {
			m, err := tx.HGetAll(ctx, rulesKey).Result()
			if err != nil {
				return err
			}
			if ch.Check != nil {
				existing, err := decodeRules(m)
				if err != nil {
					return err
				}
				if err := ch.Check(existing); err != nil {
					return checkErr{err}
				}
			}
			if ch.MustExist {
				var missing []string
				for _, r := range ch.Put {
					if _, ok := m[r.ID]; !ok {
						missing = append(missing, r.ID)
					}
				}
				if len(missing) > 0 {
					slices.Sort(missing)
					return &store.MissingRulesError{IDs: missing}
				}
			}
			if ch.Delete != nil {
				existing, err := decodeRules(m)
				if err != nil {
					return err
				}
				for i := range existing {
					if ch.Delete(&existing[i]) {
						del = append(del, existing[i].ID)
					}
				}
			}
		}
		revision = cur + 1
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			if len(del) > 0 {
				p.HDel(ctx, rulesKey, del...)
			}
			if len(put) > 0 {
				p.HSet(ctx, rulesKey, put...)
			}
			p.Incr(ctx, revKey)
			p.Publish(ctx, s.channel, message(revision, ns))
			return nil
		})
		return err
	}
	// Another replica changing the namespace first makes EXEC fail; compute the change again on the
	// new state, with a growing, jittered pause, for as long as contentionBudget allows.
	deadline := time.Now().Add(contentionBudget)
	pause := time.Millisecond
	for {
		err := s.client.Watch(ctx, txn, revKey)
		if err == nil {
			return revision, nil
		}
		var missing *store.MissingRulesError
		var check checkErr
		switch {
		case errors.As(err, &missing):
			return 0, err
		case errors.As(err, &check):
			return 0, check.err
		case errors.Is(err, goredis.TxFailedErr) && time.Now().Before(deadline) && ctx.Err() == nil:
			time.Sleep(pause/2 + rand.N(pause))
			pause = min(pause*2, 50*time.Millisecond)
			continue
		case errors.Is(err, goredis.TxFailedErr):
			return 0, fmt.Errorf("redis change rules: %w: other writers kept changing namespace %q for %v; retry", store.ErrUnavailable, ns, contentionBudget)
		}
		return 0, storeErr(ctx, "change rules", err)
	}
}

// contentionBudget bounds how long a change retries while other replicas win the race for it.
const contentionBudget = 10 * time.Second

// checkErr carries a RuleChange.Check error out of the transaction.
type checkErr struct{ err error }

func (e checkErr) Error() string { return e.err.Error() }

// Wait implements store.Rules.
func (s *Rules) Wait(ctx context.Context, ns string, after int64) (int64, error) {
	idx, err := s.feed.wait(ctx, ns, uint64(max(after, 0)))
	return int64(idx), err
}

// Ping implements store.Rules.
func (s *Rules) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return storeErr(ctx, "ping", err)
	}
	return nil
}

// Close stops the change subscription. It does not close the client, which the caller owns.
func (s *Rules) Close() error {
	s.feed.close()
	return nil
}
