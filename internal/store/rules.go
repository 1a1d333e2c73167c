package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/a8fabric/a8/api"
)

// RuleSet is a consistent snapshot of a namespace's rules and the revision it is at. Rules are sorted
// by destination, then descending priority, then id. A RuleSet from a store is shared: do not modify it.
type RuleSet struct {
	Rules    []api.Rule
	Revision int64
}

// RuleChange is one atomic change to a namespace's rules.
type RuleChange struct {
	// Delete selects rules to remove, among those present before the change (nil: none).
	Delete func(*api.Rule) bool
	// Put adds rules, or replaces those with the same id. Every rule has an id. The store keeps the
	// rules it is given; do not modify them afterwards.
	Put []api.Rule
	// MustExist makes Put an update: if any of its ids is not present, nothing changes and Change
	// returns a *MissingRulesError.
	MustExist bool
	// Check, if set, sees the rules present before the change; an error it returns aborts the
	// change (nothing is written) and is returned by Change as it is.
	Check func(current []api.Rule) error
}

// MissingRulesError names the ids an update or lookup did not find. It matches ErrNotFound.
type MissingRulesError struct {
	IDs []string
}

func (e *MissingRulesError) Error() string {
	return fmt.Sprintf("no rule with id %s", strings.Join(quoteAll(e.IDs), ", "))
}

// Unwrap makes errors.Is(err, ErrNotFound) hold.
func (e *MissingRulesError) Unwrap() error { return ErrNotFound }

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// Rules stores the controller's rules per namespace, with a revision that rises by exactly one on
// every change (Amalgam8's rule: even a change that deletes nothing), so that sidecars can tell
// whether they hold the latest rules.
type Rules interface {
	// Get returns the namespace's rules and revision (no rules at revision 0 for a new namespace).
	Get(ctx context.Context, ns string) (RuleSet, error)
	// Change applies ch atomically and returns the new revision. With several replicas on one
	// backend, concurrent changes are serialised; none is lost.
	Change(ctx context.Context, ns string, ch RuleChange) (int64, error)
	// Wait blocks until the namespace's revision differs from after or ctx ends, and returns it
	// (see Instances.Wait for the exact contract).
	Wait(ctx context.Context, ns string, after int64) (int64, error)
	// Ping checks that the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// SortRules puts rules in RuleSet order.
func SortRules(rs []api.Rule) {
	slices.SortFunc(rs, func(a, b api.Rule) int {
		if c := cmp.Compare(a.Destination, b.Destination); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
