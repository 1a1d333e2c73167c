package api

import "time"

// Record is one request a sidecar proxied, as sidecars deliver the records of traced requests to
// the controller (POST /api/v1/records) and as the controller lists them for a recipe. The fields
// are those of Amalgam8's request log, which Gremlin's assertions read; times are milliseconds.
type Record struct {
	// ID is unique per request: the sidecar's instance prefix and a sequence number.
	ID                   string    `json:"id"`
	StartTime            time.Time `json:"start_time"`
	RequestTime          float64   `json:"request_time"`           // ms, from arrival to the last byte of the answer
	UpstreamResponseTime float64   `json:"upstream_response_time"` // ms, from sending upstream to its answer's headers; -1 when there was none
	Status               int       `json:"status"`                 // 0: the connection was reset; 499: the caller went away
	Src                  string    `json:"src"`                    // "name:tag1,tag2" of the calling sidecar
	Dst                  string    `json:"dst"`                    // "destination:tags" of the backend or instance routed to
	Method               string    `json:"method"`
	Path                 string    `json:"path"`
	Protocol             string    `json:"protocol,omitempty"`
	RequestID            string    `json:"request_id"`
	UpstreamHost         string    `json:"upstream_host,omitempty"`
	ResponseFlags        string    `json:"response_flags"` // Envoy's: "-" or a comma list of UH, UF, UO, NR, URX, UT, UC, FI, DI, DC
	Attempts             int       `json:"attempts"`       // upstream attempts, 1 + the proxy's retries
	TraceKey             string    `json:"trace_key"`      // the trace action's log_key (Amalgam8: gremlin_recipe_id)
	TraceValue           string    `json:"trace_value"`    // its log_value: a recipe's id
}

// RecordStart says that a traced request began, before its Record exists: the controller counts
// it as in flight until the Record with the same ID arrives, so that checks wait for it.
type RecordStart struct {
	ID         string    `json:"id"`
	StartTime  time.Time `json:"start_time"`
	Src        string    `json:"src"`
	Dst        string    `json:"dst"`
	RequestID  string    `json:"request_id"`
	TraceKey   string    `json:"trace_key"`
	TraceValue string    `json:"trace_value"`
}

// RecordBatch is what a sidecar delivers in one POST /api/v1/records: requests that began and
// requests that ended since the last batch, in the order they happened.
type RecordBatch struct {
	Started []RecordStart `json:"started,omitempty"`
	Records []Record      `json:"records,omitempty"`
}

// RecordList is the answer of GET /api/v1/recipes/{id}/records: the recipe's records, oldest
// first, and how many of its traced requests began but have not ended (or not been delivered).
type RecordList struct {
	Records  []Record `json:"records"`
	InFlight int      `json:"in_flight"`
}
