package httpapi

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"time"
)

// IndexHeader carries a tenant's change index (the registry's) or revision (the controller's) on
// every read that can be watched.
const IndexHeader = "A8-Index"

// Watch is the blocking part of a read: ?index=N&wait=D.
type Watch struct {
	Blocking bool          // index was given
	Index    uint64        // the client's last index
	Wait     time.Duration // how long to hold the answer, already capped
}

// ParseWatch reads ?index=N&wait=D. wait is a Go duration ("30s", "5m") or whole seconds, default
// defaultWait, capped at maxWait; without index there is no blocking and wait is ignored.
func ParseWatch(q url.Values, defaultWait, maxWait time.Duration) (Watch, error) {
	var w Watch
	if s := q.Get("index"); s != "" {
		idx, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return w, fmt.Errorf("index: %q is not a non-negative integer; pass the %s header (or revision) of the last answer", s, IndexHeader)
		}
		w.Blocking, w.Index = true, idx
	}
	w.Wait = defaultWait
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			n, nerr := strconv.ParseUint(s, 10, 32)
			if nerr != nil {
				return w, fmt.Errorf("wait: %q is not a duration such as 30s or 5m", s)
			}
			d = time.Duration(n) * time.Second
		}
		if d < 0 {
			return w, fmt.Errorf("wait: %q is negative", s)
		}
		w.Wait = d
	}
	w.Wait = min(w.Wait, maxWait)
	return w, nil
}

// Jitter adds up to 1/16 to a wait, so that watchers that started together do not all wake
// together (as Consul does), without going past max.
func Jitter(d, max time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return min(d+rand.N(d/16+1), max)
}
