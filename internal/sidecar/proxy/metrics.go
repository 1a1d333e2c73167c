package proxy

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8fabric/a8/internal/sidecar/table"
)

// Metrics are the proxy's Prometheus metrics. Each cluster's series are resolved once and cached,
// so a request touches no label maps.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	ejections *prometheus.CounterVec
	ejected   *prometheus.Desc
	table     func() *table.Table // the table in use, for the ejected-endpoints gauge
	source    string
	byCluster sync.Map // cluster key -> *clusterMetrics
}

type clusterMetrics struct {
	requests [6]prometheus.Counter // by status class: 0 (reset), 1xx..5xx
	duration prometheus.Observer
	retries  prometheus.Counter
}

// NewMetrics registers the proxy's metrics with reg, labelled with the sidecar's source service.
func NewMetrics(reg prometheus.Registerer, source string) *Metrics {
	m := &Metrics{
		source: source,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a8_proxy_requests_total",
			Help: "Requests proxied, by source, destination, backend tags and status class (0xx: the connection was reset)."},
			[]string{"source", "destination", "backend", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "a8_proxy_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"source", "destination", "backend"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a8_proxy_retries_total",
			Help: "Upstream attempts beyond the first."}, []string{"source", "destination", "backend"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a8_proxy_ejections_total",
			Help: "Endpoints ejected by outlier detection."}, []string{"source", "destination", "backend"}),
		ejected: prometheus.NewDesc("a8_proxy_ejected_endpoints", "Endpoints ejected now (open circuits), by cluster.",
			[]string{"source", "destination", "backend"}, nil),
	}
	reg.MustRegister(m.requests, m.duration, m.retries, m.ejections, m)
	return m
}

// Describe and Collect make the ejected-endpoints gauge, read from the table in use at scrape time
// (ejections end by themselves, so a value stored when they began would go stale).
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.ejected }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	if m.table == nil {
		return
	}
	t := m.table()
	if t == nil {
		return
	}
	for _, c := range t.Clusters() {
		ch <- prometheus.MustNewConstMetric(m.ejected, prometheus.GaugeValue, float64(c.Ejected()), m.source, c.Service, backendLabel(c))
	}
}

func backendLabel(c *table.Cluster) string { return strings.Join(c.Tags, ",") }

func (m *Metrics) cluster(c *table.Cluster) *clusterMetrics {
	if v, ok := m.byCluster.Load(c.Key); ok {
		return v.(*clusterMetrics)
	}
	dest, backend := c.Service, backendLabel(c)
	cm := &clusterMetrics{
		duration: m.duration.WithLabelValues(m.source, dest, backend),
		retries:  m.retries.WithLabelValues(m.source, dest, backend),
	}
	for i, class := range []string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		cm.requests[i] = m.requests.WithLabelValues(m.source, dest, backend, class)
	}
	v, _ := m.byCluster.LoadOrStore(c.Key, cm)
	return v.(*clusterMetrics)
}

// UnknownDestination is the destination label of requests for a service the sidecar does not know:
// one value for all of them, so that callers cannot grow the metrics without bound.
const UnknownDestination = "_unknown"

// requestsNoCluster counts requests that never reached a cluster (unknown destination).
func (m *Metrics) requestsNoCluster(status int) {
	m.requests.WithLabelValues(m.source, UnknownDestination, "", class(status)).Inc()
}

func class(status int) string {
	if status < 100 || status > 599 {
		return "0xx"
	}
	return string(rune('0'+status/100)) + "xx"
}

// Ejected counts an ejection in cluster c.
func (m *Metrics) Ejected(c *table.Cluster) {
	m.ejections.WithLabelValues(m.source, c.Service, backendLabel(c)).Inc()
}
