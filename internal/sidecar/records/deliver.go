package records

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/a8fabric/a8/api"
)

// SendFunc delivers one batch to the controller. An error that is a *PermanentError drops the
// batch (retrying cannot help: the controller refused it); any other error is retried.
type SendFunc func(ctx context.Context, b api.RecordBatch) error

// PermanentError marks a delivery failure that retrying cannot fix, such as a 400 or 401 answer.
// Unsupported is set when the controller has no records API (an Amalgam8 controller): the
// deliverer then stops trying.
type PermanentError struct {
	Err         error
	Unsupported bool
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// DelivererOptions configure a Deliverer.
type DelivererOptions struct {
	// Send delivers a batch. Required.
	Send SendFunc
	// Buffer is how many starts and records may wait for delivery (default 10,000); past it new
	// ones are dropped and counted.
	Buffer int
	// BatchSize is the most items sent at once (default 500).
	BatchSize int
	// Interval is the longest an item waits before its batch is sent (default 100ms).
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed deliveries (default 250ms and 10s).
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one delivery (default 10s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Deliverer delivers the records of traced requests to the controller in batches, from a
// background goroutine: Started and Ended never block and never fail. While the controller is
// away, items wait in a bounded buffer and delivery is retried with backoff; when the buffer is
// full, new items are dropped and counted. Order is kept: a request's start is delivered before
// its record.
type Deliverer struct {
	opts DelivererOptions
	log  *slog.Logger
	kick chan struct{}

	mu     sync.Mutex
	queue  []item // pending items from head on, in order
	head   int
	paused time.Time // until then nothing is queued: the controller has no records API

	delivered, dropped, failures atomic.Uint64
}

// item is a start or a record waiting for delivery.
type item struct {
	start *api.RecordStart
	rec   *api.Record
}

// unsupportedPause is how long a deliverer stops after a controller said it has no records API,
// before it tries again (a controller may be upgraded under a running sidecar).
const unsupportedPause = time.Minute

// NewDeliverer returns a deliverer; Run delivers.
func NewDeliverer(opts DelivererOptions) *Deliverer {
	if opts.Buffer <= 0 {
		opts.Buffer = 10_000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(10*time.Second, opts.MinBackoff)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deliverer{opts: opts, log: log, kick: make(chan struct{}, 1)}
}

// Started queues the start of a traced request (see proxy.Config.OnTraceStart).
func (d *Deliverer) Started(r *Record) {
	if r.TraceValue == "" {
		return
	}
	s := &api.RecordStart{ID: r.ID, StartTime: r.StartTime, Src: r.Src, Dst: r.Dst, RequestID: r.RequestID,
		TraceKey: r.TraceKey, TraceValue: r.TraceValue}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.room(false) {
		return
	}
	d.queue = append(d.queue, item{start: s})
	r.announced = true
}

// Ended queues the record of a traced request; records of untraced requests are ignored. The
// record of a request whose start was queued is always taken, past the buffer's bound if need be
// (by at most the requests in flight): the controller counts that request in flight until its
// record arrives.
func (d *Deliverer) Ended(r *Record) {
	if r.TraceValue == "" {
		return
	}
	rec := APIRecord(r)
	d.mu.Lock()
	if !d.room(r.announced) {
		d.mu.Unlock()
		return
	}
	d.queue = append(d.queue, item{rec: &rec})
	full := len(d.queue)-d.head >= d.opts.BatchSize
	d.mu.Unlock()
	if full {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// room reports whether one more item is taken, counting a drop when not. d.mu is held.
func (d *Deliverer) room(owed bool) bool {
	if !d.paused.IsZero() && time.Now().Before(d.paused) {
		d.dropped.Add(1)
		return false
	}
	if len(d.queue)-d.head >= d.opts.Buffer && !owed {
		d.dropped.Add(1)
		return false
	}
	return true
}

// APIRecord converts a record to its wire form.
// Strings longer than maxField are cut: the controller refuses records with longer fields.
func APIRecord(r *Record) api.Record {
	return api.Record{ID: r.ID, StartTime: r.StartTime, RequestTime: r.RequestTime, UpstreamResponseTime: r.UpstreamResponseTime,
		Status: r.Status, Src: cut(r.Src), Dst: cut(r.Dst), Method: cut(r.Method), Path: cut(r.Path), Protocol: cut(r.Protocol),
		RequestID: cut(r.RequestID), UpstreamHost: cut(r.UpstreamHost), ResponseFlags: r.ResponseFlags, Attempts: r.Attempts,
		TraceKey: cut(r.TraceKey), TraceValue: cut(r.TraceValue)}
}

// maxField is the longest string a delivered record carries (the controller takes up to 2048
// bytes).
const maxField = 1024

func cut(s string) string {
	if len(s) <= maxField {
		return s
	}
	i := maxField
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// Delivered, Dropped and Failures count starts and records delivered, starts and records dropped
// (buffer full, refused by the controller, or no records API), and failed delivery attempts.
func (d *Deliverer) Delivered() uint64 { return d.delivered.Load() }
func (d *Deliverer) Dropped() uint64   { return d.dropped.Load() }
func (d *Deliverer) Failures() uint64  { return d.failures.Load() }

// Queued is how many items wait for delivery.
func (d *Deliverer) Queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queue) - d.head
}

// batch returns up to BatchSize of the oldest pending items, without removing them.
func (d *Deliverer) batch() (api.RecordBatch, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := min(len(d.queue)-d.head, d.opts.BatchSize)
	var b api.RecordBatch
	for _, it := range d.queue[d.head : d.head+n] {
		if it.start != nil {
			b.Started = append(b.Started, *it.start)
		} else {
			b.Records = append(b.Records, *it.rec)
		}
	}
	return b, n
}

// drop removes the n oldest pending items (a batch just delivered or refused). The queue is
// compacted once its delivered head is the larger part, so that dropping costs O(1) amortised.
func (d *Deliverer) drop(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.queue[d.head : d.head+n])
	d.head += n
	if d.head == len(d.queue) {
		d.queue, d.head = d.queue[:0], 0
	} else if d.head > len(d.queue)/2 {
		rest := copy(d.queue, d.queue[d.head:])
		clear(d.queue[rest:])
		d.queue, d.head = d.queue[:rest], 0
	}
}

// clearQueue drops everything queued, counting it.
func (d *Deliverer) clearQueue() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropped.Add(uint64(len(d.queue) - d.head))
	clear(d.queue)
	d.queue, d.head = d.queue[:0], 0
}

// Run delivers until ctx ends, then makes one last attempt (bounded by Timeout) to deliver what is
// queued.
func (d *Deliverer) Run(ctx context.Context) {
	tick := time.NewTicker(d.opts.Interval)
	defer tick.Stop()
	backoff := time.Duration(0)
	failing := false
	for {
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				d.flush()
				return
			case <-t.C:
			}
		} else {
			select {
			case <-ctx.Done():
				d.flush()
				return
			case <-tick.C:
			case <-d.kick:
			}
		}
		for {
			b, n := d.batch()
			if n == 0 {
				backoff = 0
				break
			}
			err := d.send(ctx, b)
			if err == nil {
				d.drop(n)
				d.delivered.Add(uint64(n))
				if failing {
					d.log.Info("delivering request records to the controller again")
					failing = false
				}
				backoff = 0
				continue
			}
			var perm *PermanentError
			if errors.As(err, &perm) {
				d.drop(n)
				d.dropped.Add(uint64(n))
				if perm.Unsupported {
					d.log.Warn("the controller has no records API (an Amalgam8 controller?): request records of traced requests stay in this sidecar; trying again in a minute", "error", err)
					d.mu.Lock()
					d.paused = time.Now().Add(unsupportedPause)
					d.mu.Unlock()
					d.clearQueue()
					backoff = unsupportedPause
					break
				}
				d.log.Error("the controller refused request records; dropped them", "records", n, "error", err)
				continue
			}
			if ctx.Err() != nil {
				d.flush()
				return
			}
			d.failures.Add(1)
			if !failing {
				d.log.Warn("cannot deliver request records to the controller; keeping them and retrying", "queued", d.Queued(), "error", err)
				failing = true
			}
			backoff = min(max(2*backoff, d.opts.MinBackoff), d.opts.MaxBackoff)
			backoff = backoff/2 + rand.N(backoff/2+1)
			break
		}
	}
}

func (d *Deliverer) send(ctx context.Context, b api.RecordBatch) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	return d.opts.Send(ctx, b)
}

// flush makes a last delivery attempt of everything queued, at shutdown.
func (d *Deliverer) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.Timeout)
	defer cancel()
	for ctx.Err() == nil {
		b, n := d.batch()
		if n == 0 {
			return
		}
		if err := d.send(ctx, b); err != nil {
			d.dropped.Add(uint64(d.Queued()))
			d.log.Warn("request records not delivered at shutdown", "error", err)
			return
		}
		d.drop(n)
		d.delivered.Add(uint64(n))
	}
}
