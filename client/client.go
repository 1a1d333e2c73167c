// Package client holds Go clients for a8's APIs. They speak the Amalgam8 wire format (package api)
// and add a8's blocking queries: pass QueryOptions.WaitIndex from the last QueryMeta.Index to wait
// for the next change instead of polling.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds a request that is not a blocking query (Amalgam8's registry client's 30s).
const DefaultTimeout = 30 * time.Second

// StatusError is an answer outside 2xx. Message is the server's own error text; ErrorID is the
// controller's stable error id (such as error_invalid_rule), empty for the registry.
type StatusError struct {
	Method, URL string
	Code        int
	ErrorID     string
	Message     string
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%s %s: %d: %s", e.Method, e.URL, e.Code, msg)
}

// QueryOptions make a read a blocking query: the server holds the answer until its index differs
// from WaitIndex (0 included: an empty tenant is at index 0) or WaitTime passes. A nil
// *QueryOptions is a plain read.
type QueryOptions struct {
	// WaitIndex is the index of the last answer (QueryMeta.Index).
	WaitIndex uint64
	// WaitTime bounds the wait; 0 means the server's default (30s). The server caps it at 5m.
	WaitTime time.Duration
}

// QueryMeta describes the answer to a read.
type QueryMeta struct {
	// Index is the server's change index at the time of the answer; pass it as the next WaitIndex.
	Index uint64
	// Indexed is false when the server sent no index (an Amalgam8 server without blocking queries);
	// watchers then poll.
	Indexed bool
}

// base is what every client shares: the server URL, the token and the HTTP client.
type base struct {
	url    string
	token  string
	hc     *http.Client
	errKey string      // the JSON key of the server's error text
	header http.Header // sent with every request
}

func newBase(rawURL, token string, hc *http.Client, errKey string) (base, error) {
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return base{}, fmt.Errorf("server URL %q: want http(s)://host:port", rawURL)
	}
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport} // no Timeout: contexts bound each call
	}
	return base{url: u.String(), token: token, hc: hc, errKey: errKey}, nil
}

// do sends a request and decodes a 2xx JSON answer into out (if not nil). Non-2xx answers are
// *StatusError. The answer's index header, if any, is returned in meta.
func (b *base) do(ctx context.Context, method, path string, query url.Values, q *QueryOptions, in, out any) (QueryMeta, error) {
	var meta QueryMeta
	timeout := DefaultTimeout
	if q != nil {
		if query == nil {
			query = url.Values{}
		}
		query.Set("index", strconv.FormatUint(q.WaitIndex, 10))
		wait := q.WaitTime
		if wait <= 0 {
			wait = 30 * time.Second
		}
		query.Set("wait", wait.String())
		timeout = wait + wait/16 + DefaultTimeout // the server adds up to wait/16 of jitter
	}
	if d, ok := ctx.Value(timeoutKey{}).(time.Duration); ok {
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	u := b.url + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return meta, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return meta, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return meta, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return meta, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if h := resp.Header.Get(indexHeader); h != "" {
		if v, err := strconv.ParseUint(h, 10, 64); err == nil {
			meta.Index, meta.Indexed = v, true
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &StatusError{Method: method, URL: u, Code: resp.StatusCode}
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			se.Message, _ = m[b.errKey].(string)
			if d, ok := m["description"].(string); ok && d != "" { // the controller's error shape
				se.ErrorID, se.Message = se.Message, d
			}
		} else {
			se.Message = strings.TrimSpace(string(data))
		}
		return meta, se
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return meta, fmt.Errorf("%s %s: decoding the answer: %w", method, u, err)
		}
	}
	return meta, nil
}

// timeoutKey carries a call's own timeout, for calls the server may hold longer than DefaultTimeout.
type timeoutKey struct{}

func withCallTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, timeoutKey{}, d)
}

// backoff is capped exponential backoff with full jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// isStatus reports whether err is a StatusError with code.
func isStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

// WatchOptions tune the Watch methods.
type WatchOptions struct {
	// Wait is how long each blocking query may be held (default 30s).
	Wait time.Duration
	// Poll is the interval against a server without blocking queries (default 15s, Amalgam8's).
	Poll time.Duration
	// MinBackoff and MaxBackoff space out retries after errors (default 1s and 30s).
	MinBackoff, MaxBackoff time.Duration
	// OnError, if set, is told of each failed query (the watch goes on retrying).
	OnError func(error)
	// OnSync, if set, is told of each successful query, changed or not: the time of the last one
	// says how current the caller's view is.
	OnSync func(QueryMeta)
}

func (o *WatchOptions) defaults() {
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 15 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
}

// watch is the loop behind the Watch methods: a plain read first, then blocking reads at the last
// index; against a server that sends no index, a poll every opts.Poll that reports only results that
// differ (by same). Failed reads are retried with backoff and never reported to fn, so a caller that
// keeps the last result keeps working while the server is away. It returns ctx's error.
func watch[T any](ctx context.Context, opts WatchOptions, fetch func(context.Context, *QueryOptions) (T, QueryMeta, error), same func(a, b T) bool, fn func(T, QueryMeta)) error {
	opts.defaults()
	bo := backoff{min: opts.MinBackoff, max: opts.MaxBackoff}
	var (
		last     QueryMeta
		lastVal  T
		reported bool
	)
	for {
		var qo *QueryOptions
		if reported && last.Indexed {
			qo = &QueryOptions{WaitIndex: last.Index, WaitTime: opts.Wait}
		}
		val, meta, err := fetch(ctx, qo)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if opts.OnError != nil {
				opts.OnError(err)
			}
			if !sleep(ctx, bo.next()) {
				return ctx.Err()
			}
			continue
		}
		bo.reset()
		if opts.OnSync != nil {
			opts.OnSync(meta)
		}
		changed := !reported || meta.Index != last.Index || meta.Indexed != last.Indexed
		if !meta.Indexed && !changed {
			changed = !same(val, lastVal)
		}
		if changed {
			fn(val, meta)
		}
		reported, last, lastVal = true, meta, val
		if !meta.Indexed && !sleep(ctx, opts.Poll) {
			return ctx.Err()
		}
	}
}
