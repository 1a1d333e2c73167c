// Package redis is a8's shared store on Redis: several registry (and controller) replicas use one
// Redis, and a change made through any replica wakes watchers on all of them through pub/sub.
package redis

import (
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/a8fabric/a8/internal/store"
)

// ClientOptions say how to reach Redis.
type ClientOptions struct {
	// Address is host:port, or a redis:// or rediss:// URL (which may carry password and database).
	Address  string
	Password string
	DB       int
}

// NewClient returns a client for opts. It does not connect; the first command does.
func NewClient(opts ClientOptions) (goredis.UniversalClient, error) {
	if opts.Address == "" {
		return nil, errors.New("redis address is empty: set --store_address host:port (env A8_STORE_ADDRESS)")
	}
	var o *goredis.Options
	if strings.Contains(opts.Address, "://") {
		var err error
		if o, err = goredis.ParseURL(opts.Address); err != nil {
			return nil, fmt.Errorf("redis address %q: %w", opts.Address, err)
		}
	} else {
		o = &goredis.Options{Addr: opts.Address}
	}
	if opts.Password != "" {
		o.Password = opts.Password
	}
	if opts.DB != 0 {
		o.DB = opts.DB
	}
	// Fail fast during an outage: callers answer 503 and clients retry, rather than hang.
	o.DialTimeout = 2 * time.Second
	o.ReadTimeout = 3 * time.Second
	o.WriteTimeout = 3 * time.Second
	o.MaxRetries = 1
	o.DialerRetries = 2
	o.DialerRetryTimeout = 50 * time.Millisecond
	return goredis.NewClient(o), nil
}

// unavailable marks err as a failure to reach Redis, keeping its text for the operator.
func unavailable(op string, err error) error {
	return fmt.Errorf("redis %s: %w: %w", op, store.ErrUnavailable, err)
}
