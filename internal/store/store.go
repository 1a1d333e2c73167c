// Package store defines the storage interfaces of a8's servers and the errors they share. Each
// interface has one conformance suite (package storetest) that every backend (memory, redis) passes.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

var (
	// ErrNotFound means the record does not exist (or its lease has expired).
	ErrNotFound = errors.New("not found")
	// ErrCapacity means the tenant already holds as many instances as it may.
	ErrCapacity = errors.New("namespace capacity reached")
	// ErrUnavailable wraps a failure to reach the backing store; callers answer 503 and retry later.
	ErrUnavailable = errors.New("store unavailable")
	// ErrReadOnly means the instance comes from a catalog (Kubernetes, a remote Eureka, a file):
	// it cannot be changed through the registry; callers answer 4xx and say which catalog.
	ErrReadOnly = errors.New("read-only: the instance belongs to a catalog")
)

// Instance is a registered service instance, the registry's unit of storage. It is a value: stores
// copy it in and out and never share it with callers.
type Instance struct {
	ID          string          `json:"id"`
	ServiceName string          `json:"service_name"`
	Endpoint    Endpoint        `json:"endpoint"`
	Status      string          `json:"status"`
	Tags        []string        `json:"tags,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	// TTL is the lease: the instance expires once now - LastHeartbeat > TTL, unless its status is
	// OUT_OF_SERVICE or TTL is 0 (see Lease).
	TTL time.Duration `json:"ttl"`
	// LastHeartbeat is set by the store on register and renew; callers' values are ignored.
	LastHeartbeat time.Time `json:"-"`
}

// Endpoint is an instance's network address.
type Endpoint struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// StatusOutOfService is the status whose instances never expire (Amalgam8's rule).
const StatusOutOfService = "OUT_OF_SERVICE"

// Lease returns how long the instance lives without a heartbeat; 0 means it never expires.
func (in *Instance) Lease() time.Duration {
	if in.Status == StatusOutOfService || in.TTL < 0 {
		return 0
	}
	return in.TTL
}

// Equal reports whether two instances carry the same registration (everything but the heartbeat).
func (in *Instance) Equal(o *Instance) bool {
	if in.ID != o.ID || in.ServiceName != o.ServiceName || in.Endpoint != o.Endpoint ||
		in.Status != o.Status || in.TTL != o.TTL || string(in.Metadata) != string(o.Metadata) ||
		len(in.Tags) != len(o.Tags) {
		return false
	}
	for i := range in.Tags {
		if in.Tags[i] != o.Tags[i] {
			return false
		}
	}
	return true
}

// InstanceList is a consistent snapshot of a tenant's live instances and the change index it is at.
type InstanceList struct {
	Instances []Instance
	Index     uint64
}

// Instances stores registered instances per tenant (namespace), with leases and a change index.
//
// The change index of a namespace rises on every change a watcher must see: a new or changed
// registration, a deregistration, an expiry. A renewal (heartbeat) and a re-registration with
// identical content change nothing and do not raise it. Implementations are safe for concurrent use
// by several goroutines and, for shared backends, by several processes.
type Instances interface {
	// Register inserts inst or replaces the instance with the same ID, and renews its lease. If
	// capacity >= 0 and the namespace already holds that many live instances, a new ID is refused
	// with ErrCapacity. It returns the stored instance (LastHeartbeat set).
	Register(ctx context.Context, ns string, inst Instance, capacity int) (Instance, error)
	// Renew restarts the lease of a live instance; ErrNotFound if it is unknown or expired.
	Renew(ctx context.Context, ns, id string) error
	// Deregister removes a live instance; ErrNotFound if it is unknown or expired.
	Deregister(ctx context.Context, ns, id string) error
	// List returns the namespace's live instances sorted by service name then ID, and the index.
	// A non-empty service restricts the list to that service.
	List(ctx context.Context, ns, service string) (InstanceList, error)
	// Wait blocks until the namespace's index differs from after or ctx is done, and returns the
	// index. It returns at once when the index is already different (including lower, after a reset).
	// When ctx ends first it returns the current index and ctx's error.
	Wait(ctx context.Context, ns string, after uint64) (uint64, error)
	// Reap removes every expired instance of every namespace, raising the index of each namespace
	// it changed, and returns how many it removed. Listing never shows expired instances, reaped or
	// not; reaping is what wakes watchers. It is safe to run on several replicas at once.
	Reap(ctx context.Context) (int, error)
	// Ping checks that the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources and stops its goroutines.
	Close() error
}

// Clock returns the current time. Stores take one so tests can move time without sleeping.
type Clock func() time.Time
