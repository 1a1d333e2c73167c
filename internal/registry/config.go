// Package registry is a8's multi-tenant service registry: the Amalgam8 registry REST API over a
// store.Instances, with TTL leases, filters, projection and index-based blocking queries.
package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/store"
)

// Limits of a registration, as Amalgam8's registry enforces them (tags are a8's own addition).
const (
	MaxServiceNameBytes = 64
	MaxEndpointBytes    = 128
	MaxStatusBytes      = 32
	MaxMetadataBytes    = 1024
	MaxTags             = 64
	MaxTagBytes         = 256
	maxBodyBytes        = 64 << 10
)

// Config configures a registry Server.
type Config struct {
	// Store holds the instances. Required.
	Store store.Instances
	// Auth maps bearer tokens to namespaces; nil means one tenant, "default".
	Auth auth.Authenticator
	// DefaultTTL applies when a registration gives none; MinTTL and MaxTTL clamp the rest.
	// Defaults: 30s, 10s, 10m (Amalgam8's). All are whole seconds.
	DefaultTTL, MinTTL, MaxTTL time.Duration
	// NamespaceCapacity caps the instances of one namespace; -1, or 0 (the zero Config), is unlimited.
	NamespaceCapacity int
	// ReapInterval is how often expired instances are removed so watchers learn of it. Default 1s.
	ReapInterval time.Duration
	// DefaultWait and MaxWait bound a blocking query's ?wait=. Defaults: 30s and 5m.
	DefaultWait, MaxWait time.Duration
	// RequireHTTPS redirects plain-HTTP requests to HTTPS.
	RequireHTTPS bool
	// Logger receives the registry's logs; nil discards them.
	Logger *slog.Logger
	// Version is reported by /uptime.
	Version string
	// Catalogs are the catalogs merged into Store (see catalog.Merge), for /uptime to report on.
	Catalogs []catalog.Catalog
}

func (c *Config) setDefaults() error {
	if c.Store == nil {
		return errors.New("registry: no store configured")
	}
	if c.Auth == nil {
		c.Auth = auth.Default()
	}
	if c.DefaultTTL == 0 {
		c.DefaultTTL = 30 * time.Second
	}
	if c.MinTTL == 0 {
		c.MinTTL = 10 * time.Second
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = 10 * time.Minute
	}
	for name, d := range map[string]time.Duration{"--default_ttl": c.DefaultTTL, "--min_ttl": c.MinTTL, "--max_ttl": c.MaxTTL} {
		if d < time.Second || d%time.Second != 0 {
			return fmt.Errorf("%s %v: must be a whole number of seconds, at least 1s", name, d)
		}
	}
	if c.MinTTL > c.MaxTTL {
		return fmt.Errorf("--min_ttl %v is above --max_ttl %v", c.MinTTL, c.MaxTTL)
	}
	if c.DefaultTTL < c.MinTTL || c.DefaultTTL > c.MaxTTL {
		return fmt.Errorf("--default_ttl %v is outside [--min_ttl %v, --max_ttl %v]", c.DefaultTTL, c.MinTTL, c.MaxTTL)
	}
	if c.NamespaceCapacity == 0 {
		c.NamespaceCapacity = -1
	}
	if c.NamespaceCapacity < -1 {
		return fmt.Errorf("--namespace_capacity %d: use -1 for unlimited or a positive number", c.NamespaceCapacity)
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 5 * time.Minute
	}
	if c.DefaultWait <= 0 {
		c.DefaultWait = 30 * time.Second
	}
	c.DefaultWait = min(c.DefaultWait, c.MaxWait)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// clampTTL applies Amalgam8's rule: 0 takes the default, the rest is clamped to [min, max].
func (c *Config) clampTTL(seconds int64) time.Duration {
	if seconds == 0 {
		return c.DefaultTTL
	}
	if seconds > int64(c.MaxTTL/time.Second) {
		return c.MaxTTL
	}
	return max(time.Duration(seconds)*time.Second, c.MinTTL)
}
