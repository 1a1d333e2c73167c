package api

// Rule is a routing rule (Route set) or an action rule (Actions set) of the controller, in Amalgam8's
// schema. Optional fields are pointers where 0 is a value a user may write (weight, probability,
// return_code, timeouts), so that an unset field reads back as absent, as Amalgam8's tests expect.
type Rule struct {
	ID          string   `json:"id,omitempty"`
	Priority    int      `json:"priority,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Destination string   `json:"destination,omitempty"`
	Match       *Match   `json:"match,omitempty"`
	Route       *Route   `json:"route,omitempty"`
	Actions     []Action `json:"actions,omitempty"`
}

// IsRoute reports whether r is a routing rule.
func (r *Rule) IsRoute() bool { return r.Route != nil }

// IsAction reports whether r is an action rule.
func (r *Rule) IsAction() bool { return r.Actions != nil }

// Match is the condition of a rule: the request's source service and headers. All, Any and None are
// Amalgam8 0.x's boolean forms (lists of source/header conditions), accepted so 0.x rules keep working.
type Match struct {
	Source  *Source           `json:"source,omitempty"`
	Headers map[string]string `json:"headers,omitempty"` // header name -> regular expression
	All     []MatchCondition  `json:"all,omitempty"`
	Any     []MatchCondition  `json:"any,omitempty"`
	None    []MatchCondition  `json:"none,omitempty"`
}

// MatchCondition is one element of Match.All, Any or None.
type MatchCondition struct {
	Source  *Source           `json:"source,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// Source is the service a request comes from: its name and, optionally, tags it must carry.
type Source struct {
	Name string   `json:"name"`
	Tags []string `json:"tags,omitempty"`
}

// Route sends matching requests to backends.
type Route struct {
	Backends []Backend `json:"backends"`
	// HTTPReqTimeout is the request timeout in seconds, retries included (default 15).
	HTTPReqTimeout *float64 `json:"http_req_timeout,omitempty"`
	// HTTPReqRetries is how many times a failed request is retried.
	HTTPReqRetries *int `json:"http_req_retries,omitempty"`
	// URI rewrites the path for every backend of the route.
	URI *URI `json:"uri,omitempty"`
}

// URI matches and rewrites the request path.
type URI struct {
	Path          string `json:"path,omitempty"`
	Prefix        string `json:"prefix,omitempty"`
	PrefixRewrite string `json:"prefix_rewrite,omitempty"`
}

// Backend is a version of a service, named by tags, and its share of the traffic.
type Backend struct {
	// Name is the service; default the rule's destination.
	Name string   `json:"name,omitempty"`
	Tags []string `json:"tags"`
	// Weight is the share in (0, 1]; backends without one share what the others leave.
	Weight     *float64    `json:"weight,omitempty"`
	LBType     string      `json:"lb_type,omitempty"` // round_robin (default), least_request, random
	Resilience *Resilience `json:"resilience,omitempty"`
	URI        *URI        `json:"uri,omitempty"`
	// Timeout (seconds) and Retries are Amalgam8 0.x's per-backend forms of the route's
	// http_req_timeout and http_req_retries.
	Timeout *float64 `json:"timeout,omitempty"`
	Retries *int     `json:"retries,omitempty"`
}

// Resilience is a backend's circuit breaker and connection limits.
type Resilience struct {
	MaxConnections           int     `json:"max_connections,omitempty"`
	MaxPendingRequests       int     `json:"max_pending_requests,omitempty"`
	MaxRequests              int     `json:"max_requests,omitempty"`
	SleepWindow              float64 `json:"sleep_window,omitempty"` // seconds
	ConsecutiveErrors        int     `json:"consecutive_errors,omitempty"`
	DetectionInterval        float64 `json:"detection_interval,omitempty"` // seconds
	MaxRequestsPerConnection int     `json:"max_requests_per_connection,omitempty"`
}

// Action kinds.
const (
	ActionDelay = "delay"
	ActionAbort = "abort"
	ActionTrace = "trace"
)

// Action is a fault or trace applied to matching requests.
type Action struct {
	Action string `json:"action"`
	// Duration of a delay, in seconds.
	Duration float64 `json:"duration,omitempty"`
	// Probability in (0, 1] that a delay or abort happens; default 1.
	Probability *float64 `json:"probability,omitempty"`
	// Tags restrict the action to requests routed to backends carrying them.
	Tags []string `json:"tags,omitempty"`
	// ReturnCode of an abort: an HTTP status, or a negative value to reset the connection.
	ReturnCode *int `json:"return_code,omitempty"`
	// LogKey and LogValue of a trace: the request record gets LogKey=LogValue (default key "trace").
	LogKey   string `json:"log_key,omitempty"`
	LogValue string `json:"log_value,omitempty"`
}

// RuleList is the body of POST and PUT /v1/rules and of GET /v1/rules (with Revision).
type RuleList struct {
	Rules    []Rule `json:"rules"`
	Revision int64  `json:"revision"`
}

// RuleIDs is the 201 body of POST /v1/rules.
type RuleIDs struct {
	IDs []string `json:"ids"`
}

// RulesByDestination is the body of GET /v1/rules/routes and /v1/rules/actions.
type RulesByDestination struct {
	Services map[string][]Rule `json:"services"`
}

// ControllerError is the error body of the controller API: a stable id and a description.
type ControllerError struct {
	Error       string `json:"error"`
	Description string `json:"description"`
}
