// Package records is the sidecar's request log: one Record per proxied request, with the fields
// Amalgam8's Envoy access log had (which Gremlin's assertions read), kept in a bounded in-memory ring
// for the admin API and written as JSON lines to a file or stdout by a background writer that never
// holds up a request.
package records

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Record is one proxied request. Times are in milliseconds.
type Record struct {
	ID                   string    `json:"id,omitempty"` // set on traced requests: unique per request, for the controller
	StartTime            time.Time `json:"start_time"`
	RequestTime          float64   `json:"request_time"`           // ms, from arrival to the last byte of the answer
	UpstreamResponseTime float64   `json:"upstream_response_time"` // ms, from sending upstream to its answer's headers; -1 when there was none
	Status               int       `json:"status"`                 // 0 when the connection was reset (an abort fault)
	Src                  string    `json:"src"`                    // "name:tag1,tag2" of this sidecar
	Dst                  string    `json:"dst"`                    // "destination:tags" of the backend routed to; on the default route, the instance's tags
	Method               string    `json:"method"`
	Path                 string    `json:"path"`
	Protocol             string    `json:"protocol"`
	RequestID            string    `json:"request_id"`
	UpstreamHost         string    `json:"upstream_host"`
	ResponseFlags        string    `json:"response_flags"` // Envoy's: "-" or UH, UF, UO, NR, URX, UT, FI, DI, UC
	Attempts             int       `json:"attempts"`       // upstream attempts, 1 + retries
	XForwarded           string    `json:"x_forwarded"`
	UserAgent            string    `json:"user_agent"`
	TraceKey             string    `json:"-"` // the trace action's log_key: the record carries TraceKey: TraceValue
	TraceValue           string    `json:"-"`

	announced bool // its start was queued for delivery (see Deliverer)
}

// MarshalJSON writes the record with the trace action's key and value as a field of its own, as
// Amalgam8's log did ("gremlin_recipe_id": "<id>"), plus message and module.
func (r *Record) MarshalJSON() ([]byte, error) {
	type plain Record
	b, err := json.Marshal((*plain)(r))
	if err != nil {
		return nil, err
	}
	extra := []byte(`,"message":`)
	extra = strconv.AppendQuote(extra, r.Method+" "+r.Path+" "+strconv.Itoa(r.Status))
	extra = append(extra, `,"module":"A8"`...)
	if r.TraceKey != "" {
		k, _ := json.Marshal(r.TraceKey)
		v, _ := json.Marshal(r.TraceValue)
		extra = append(append(append(append(extra, ','), k...), ':'), v...)
	}
	return append(append(b[:len(b)-1], extra...), '}'), nil
}

// Ring keeps the latest records. Adding is lock-free: one atomic increment and one atomic store.
type Ring struct {
	slots []atomic.Pointer[Record]
	next  atomic.Uint64
}

// NewRing returns a ring of size records (at least 1).
func NewRing(size int) *Ring {
	return &Ring{slots: make([]atomic.Pointer[Record], max(size, 1))}
}

// Add keeps r, displacing the oldest record when the ring is full. r must not change afterwards.
func (g *Ring) Add(r *Record) {
	i := g.next.Add(1) - 1
	g.slots[i%uint64(len(g.slots))].Store(r)
}

// Filter selects records; zero fields select everything.
type Filter struct {
	TraceKey, TraceValue string    // the trace key and value (both, or the key alone)
	Src, Dst             string    // exact "name:tags", or a name alone matching any tags
	Since                time.Time // start time at or after
	Limit                int       // the newest Limit records (0: all)
}

func matchName(want, got string) bool {
	if want == "" || want == got {
		return true
	}
	for i := 0; i < len(got); i++ {
		if got[i] == ':' {
			return got[:i] == want
		}
	}
	return false
}

func (f *Filter) match(r *Record) bool {
	return (f.TraceKey == "" || r.TraceKey == f.TraceKey) && (f.TraceValue == "" || r.TraceValue == f.TraceValue) &&
		matchName(f.Src, r.Src) && matchName(f.Dst, r.Dst) && (f.Since.IsZero() || !r.StartTime.Before(f.Since))
}

// Query returns the kept records that pass f, oldest first.
func (g *Ring) Query(f Filter) []*Record {
	n := uint64(len(g.slots))
	end := g.next.Load()
	start := uint64(0)
	if end > n {
		start = end - n
	}
	out := []*Record{}
	for i := start; i < end; i++ {
		r := g.slots[i%n].Load()
		if r != nil && f.match(r) {
			out = append(out, r)
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out
}

// Writer writes records as JSON lines from a background goroutine. Write never blocks: when the
// buffer is full the record is dropped and counted.
type Writer struct {
	ch      chan *Record
	w       io.Writer
	log     *slog.Logger
	dropped atomic.Uint64
	done    chan struct{}
	mu      sync.RWMutex // Close holds it to close ch; Write holds it for reading while sending
	closed  bool
}

// NewWriter starts a writer to w with room for buffer records in flight.
func NewWriter(w io.Writer, buffer int, log *slog.Logger) *Writer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wr := &Writer{ch: make(chan *Record, max(buffer, 1)), w: w, log: log, done: make(chan struct{})}
	go wr.run()
	return wr
}

// Write queues r for writing, or drops it if the writer is behind or closed.
func (w *Writer) Write(r *Record) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped.Add(1)
		return
	}
	select {
	case w.ch <- r:
	default:
		w.dropped.Add(1)
	}
}

// Dropped is how many records were dropped because the writer was behind.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

func (w *Writer) run() {
	defer close(w.done)
	bw := bufio.NewWriterSize(w.w, 64<<10)
	enc := json.NewEncoder(bw)
	failing := false
	for r := range w.ch {
		err := enc.Encode(r)
		if err == nil && len(w.ch) == 0 {
			err = bw.Flush() // flush whenever the queue runs dry: lines appear promptly when idle
		}
		if err != nil && !failing {
			w.log.Warn("cannot write request records", "error", err)
		}
		failing = err != nil
	}
	_ = bw.Flush()
}

// Close writes what is queued and stops the writer; later writes are dropped. Closing twice is
// harmless.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
	w.mu.Unlock()
	<-w.done
}
