package sidecar

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/a8fabric/a8/internal/sidecar/health"
	"github.com/a8fabric/a8/internal/sidecar/records"
	"github.com/a8fabric/a8/internal/sidecar/table"
)

// admin is the admin API:
//
//	GET /health     200 while the sidecar runs (liveness)
//	GET /ready      200 once the routing table is loaded (proxy) and the instance is registered
//	                (register); 503 with what is missing otherwise
//	GET /metrics    Prometheus metrics
//	GET /routes     the routing table in use, its revisions and the freshness of each source
//	GET /records    request records: ?trace_key= &trace_value= &src= &dst= &since= (RFC 3339 or
//	                unix ms) &limit=
//	GET /healthchecks  the latest result of every health check
func (s *Sidecar) admin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"healthy": true})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		var missing []string
		if s.cfg.Proxy && !s.state.loaded() {
			missing = append(missing, "routing table: instances and rules not loaded yet")
		}
		if s.cfg.Register && !s.registered.Load() {
			s.regMu.Lock()
			why := "instance not registered"
			if s.regErr != "" {
				why += ": " + s.regErr
			} else if s.monitor != nil && !s.monitor.Healthy() {
				why += ": health checks not passing"
			}
			s.regMu.Unlock()
			missing = append(missing, why)
		}
		if len(missing) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "missing": missing})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]any{"service": s.cfg.Service.String()}
		if s.cfg.Proxy {
			out["table"] = dumpTable(s.proxy.Table())
			out["sources"] = s.state.snapshot()
		}
		if s.cfg.Register {
			s.regMu.Lock()
			out["registration"] = map[string]any{"registered": s.registered.Load(), "id": s.regID, "error": s.regErr}
			s.regMu.Unlock()
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /records", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := records.Filter{TraceKey: q.Get("trace_key"), TraceValue: q.Get("trace_value"), Src: q.Get("src"), Dst: q.Get("dst")}
		if v := q.Get("since"); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				f.Since = time.UnixMilli(ms)
			} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				f.Since = t
			} else {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "since: give RFC 3339 time or unix milliseconds"})
				return
			}
		}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: give a non-negative integer"})
				return
			}
			f.Limit = n
		}
		writeJSON(w, http.StatusOK, map[string]any{"records": s.ring.Query(f)})
	})
	// Profiles, for measuring the proxy under load (the admin listener is on 127.0.0.1 by default).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthchecks", func(w http.ResponseWriter, _ *http.Request) {
		var status []health.Result
		if s.monitor != nil {
			status = s.monitor.Status()
		}
		writeJSON(w, http.StatusOK, map[string]any{"checks": status})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// dumpTable renders a routing table for people and tools.
func dumpTable(t *table.Table) map[string]any {
	dests := map[string]any{}
	cluster := func(c *table.Cluster) map[string]any {
		eps := []map[string]any{}
		now := time.Now().UnixNano()
		for _, e := range c.Endpoints {
			eps = append(eps, map[string]any{"id": e.ID, "address": e.Scheme + "://" + e.Addr, "tags": e.Tags,
				"active_requests": e.State.Active(), "ejected": e.State.Ejected(now)})
		}
		return map[string]any{"cluster": c.Key, "lb_type": c.LBType, "endpoints": eps}
	}
	for _, name := range t.Destinations() {
		d := t.Lookup(name)
		var routes []map[string]any
		for _, r := range d.Routes {
			var backends []map[string]any
			for i, b := range r.Rule.Backends {
				bc := cluster(r.Clusters[i])
				bc["weight"] = b.Weight
				backends = append(backends, bc)
			}
			routes = append(routes, map[string]any{"rule": r.Rule.ID, "priority": r.Rule.Priority, "timeout": r.Rule.Timeout.String(),
				"retries": r.Rule.Retries, "backends": backends})
		}
		var actions []map[string]any
		for _, a := range d.Actions {
			actions = append(actions, map[string]any{"rule": a.ID, "priority": a.Priority, "actions": a.Actions})
		}
		dests[name] = map[string]any{"routes": routes, "actions": actions, "default": cluster(d.All)}
	}
	return map[string]any{"revision": t.Revision, "index": t.Index, "built": t.Built, "destinations": dests}
}
