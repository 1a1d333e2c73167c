// Package catalogtest has a catalog whose content the test sets, for tests of what consumes
// catalogs (the merged store, the registry, sidecars).
package catalogtest

import (
	"context"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/store"
)

// Catalog is a catalog.Catalog whose content is set with Set (or the embedded Feed's Replace).
type Catalog struct {
	*catalog.Feed
	name string
}

var _ catalog.Catalog = (*Catalog)(nil)

// New returns an empty catalog called name, already synced.
func New(name string) *Catalog {
	c := &Catalog{Feed: catalog.NewFeed(nil), name: name}
	c.Synced()
	return c
}

// Name implements catalog.Catalog.
func (c *Catalog) Name() string { return c.name }

// Run implements catalog.Catalog: there is no source to follow.
func (c *Catalog) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Set replaces namespace ns's content, leaving the other namespaces as they are.
func (c *Catalog) Set(ns string, instances ...store.Instance) {
	snap := c.Snapshot()
	content := map[string][]store.Instance{ns: instances}
	for _, other := range snap.Namespaces() {
		if other != ns {
			content[other] = snap.Tenant(other).Instances
		}
	}
	c.Replace(content)
}

// Instance returns an UP http instance of service at addr with id and tags.
func Instance(id, service, addr string, tags ...string) store.Instance {
	return store.Instance{ID: id, ServiceName: service, Endpoint: store.Endpoint{Type: "http", Value: addr}, Status: "UP", Tags: tags}
}
