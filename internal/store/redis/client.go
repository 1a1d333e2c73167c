// Package redis is a8's shared store on Redis: several registry (and controller) replicas use one
// Redis, and a change made through any replica wakes watchers on all of them through pub/sub.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// SetLogger sends go-redis's own messages (pool dial failures and the like) to log at debug level:
// the stores already report unavailability once, as a warning with context, and go-redis would
// otherwise print a line per failed dial to stderr.
func SetLogger(log *slog.Logger) { goredis.SetLogger(redisLogger{log}) }

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

func init() { SetLogger(slog.New(slog.DiscardHandler)) }

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

// storeErr classifies a failed Redis call: a cancelled or expired context is returned as it is (the
// caller went away); a connection problem, or Redis saying it cannot serve now (loading, read-only
// replica, failover), is store.ErrUnavailable, which callers answer with 503; any other reply is a
// plain error (a bug or a misconfiguration), which callers answer with 500.
func storeErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) && !errors.Is(err, goredis.ErrClosed) {
		msg := rerr.Error()
		for _, transient := range []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "NOREPLICAS"} {
			if strings.HasPrefix(msg, transient) {
				return fmt.Errorf("redis %s: %w: %w", op, store.ErrUnavailable, err)
			}
		}
		return fmt.Errorf("redis %s: %w", op, err)
	}
	return fmt.Errorf("redis %s: %w: %w", op, store.ErrUnavailable, err)
}

// KeyPart escapes s for use inside a Redis key, so that no tenant or service name can reach into
// another's keys: '%', '{', '}', ':' and bytes outside printable ASCII are percent-encoded.
func KeyPart(s string) string {
	const hex = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c == '{' || c == '}' || c == ':' || c <= ' ' || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' || c == '{' || c == '}' || c == ':' || c <= ' ' || c >= 0x7f {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
