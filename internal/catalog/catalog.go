// Package catalog merges read-only sources of instances (catalogs: Kubernetes, a remote Eureka, a
// directory of files) into a tenant's view of the registry.
//
// A catalog keeps its whole content in a Feed: each time its source changes it computes the full
// state (namespace → instances) and publishes it as a new immutable Snapshot. Merge wraps the
// registry's own store (store.Instances) so that every list, watch and Eureka answer shows the
// catalogs' instances beside the registered ones, and refuses to change an instance a catalog owns
// (store.ErrReadOnly). The registry, the Eureka API and everything else that works through
// store.Instances need no change to see catalogs.
//
// Subpackages: file (a directory of <namespace>.json), eureka (remote Eureka servers), kubernetes
// (EndpointSlices and Pods through client-go informers).
package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/a8fabric/a8/internal/store"
)

// Catalog is a read-only source of instances.
//
// Implementations publish through a Feed (embed *Feed for Snapshot and Status), so that snapshots
// are immutable, unchanged content keeps its generation, and Merge can be told of every change.
type Catalog interface {
	// Name is the catalog's kind as messages name it: "kubernetes", "eureka", "file". Names are
	// unique among the catalogs of one Merge.
	Name() string
	// Snapshot returns the current content. It never returns nil; the result must not be modified.
	Snapshot() *Snapshot
	// Run keeps the content in step with the source until ctx ends, then stops every goroutine the
	// catalog started and returns nil. Failures to reach the source are retried and reported
	// through Status, never returned: the last good content stays in force.
	Run(ctx context.Context) error
	// Status says whether the catalog is in step with its source, and if not, why.
	Status() Status
}

// Status is what /uptime (and a sidecar's admin API) shows of a catalog.
type Status struct {
	// OK is true while the catalog is in step with its source.
	OK bool `json:"ok"`
	// Detail says why it is not (or, while starting, what it waits for).
	Detail string `json:"detail,omitempty"`
	// LastSync is when the content was last confirmed against the source.
	LastSync time.Time `json:"last_sync,omitzero"`
	// Instances is how many instances the catalog holds, over all namespaces.
	Instances int `json:"instances"`
}

// ReadOnlyError is the error of a write (register, heartbeat, deregister) to an instance that a
// catalog owns. It wraps store.ErrReadOnly.
type ReadOnlyError struct {
	ID      string // the instance
	Catalog string // the catalog's Name
}

func (e *ReadOnlyError) Error() string {
	return fmt.Sprintf("instance %s belongs to the %s catalog: change it there, not through the registry", e.ID, e.Catalog)
}

// Unwrap makes errors.Is(err, store.ErrReadOnly) hold.
func (e *ReadOnlyError) Unwrap() error { return store.ErrReadOnly }
