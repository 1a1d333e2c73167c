package eureka_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeEureka plays a remote Eureka server (a foreign system) from recorded-style JSON: the shapes
// of reference/eureka.md, including the liberal ones (string ports, a single instance as an
// object, Java's empty-metadata marker). Its delta holds the changes since the last Reset.
type fakeEureka struct {
	*httptest.Server
	mu        sync.Mutex
	apps      map[string]map[string]map[string]any // APP → id → instance JSON
	changes   []map[string]any                     // instance JSON with actionType, since Reset
	version   int
	down      atomic.Bool // answer 503
	noDelta   atomic.Bool // answer 403 to apps/delta, as a server with delta disabled
	badHash   atomic.Bool // send a wrong apps__hashcode in deltas
	fulls     atomic.Int64
	deltas    atomic.Int64
	lastPaths []string
}

func newFakeEureka(t *testing.T) *fakeEureka {
	f := &fakeEureka{apps: map[string]map[string]map[string]any{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// instance is a Eureka instance as a Java client registers it.
func instance(app, id, ip string, port int, status string, meta map[string]string) map[string]any {
	m := map[string]any{
		"instanceId": id, "hostName": id + ".local", "app": app, "ipAddr": ip, "status": status,
		"overriddenStatus": "UNKNOWN",
		"port":             map[string]any{"$": port, "@enabled": "true"},
		"securePort":       map[string]any{"$": 443, "@enabled": "false"},
		"countryId":        1,
		"dataCenterInfo":   map[string]any{"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
		"leaseInfo":        map[string]any{"renewalIntervalInSecs": 30, "durationInSecs": 90},
		"vipAddress":       strings.ToLower(app), "secureVipAddress": strings.ToLower(app),
		"lastUpdatedTimestamp": "1700000000000", "lastDirtyTimestamp": "1700000000000",
	}
	if meta == nil {
		m["metadata"] = map[string]any{"@class": "java.util.Collections$EmptyMap"}
	} else {
		mm := map[string]any{}
		for k, v := range meta {
			mm[k] = v
		}
		m["metadata"] = mm
	}
	return m
}

// put adds or changes an instance (ADDED or MODIFIED in the delta).
func (f *fakeEureka) put(in map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	app, id := in["app"].(string), in["instanceId"].(string)
	action := "MODIFIED"
	if f.apps[app] == nil {
		f.apps[app] = map[string]map[string]any{}
	}
	if f.apps[app][id] == nil {
		action = "ADDED"
	}
	f.apps[app][id] = in
	f.change(in, action)
}

func (f *fakeEureka) remove(app, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.apps[app][id]
	delete(f.apps[app], id)
	if len(f.apps[app]) == 0 {
		delete(f.apps, app)
	}
	f.change(in, "DELETED")
}

func (f *fakeEureka) change(in map[string]any, action string) {
	c := maps.Clone(in)
	c["actionType"] = action
	f.changes = append(f.changes, c)
	f.version++
}

// paths returns the paths requested so far.
func (f *fakeEureka) paths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lastPaths)
}

// reset empties the delta queue, as a real server's retention does after 3 minutes.
func (f *fakeEureka) reset() {
	f.mu.Lock()
	f.changes = nil
	f.mu.Unlock()
}

func (f *fakeEureka) hashcode() string {
	counts := map[string]int{}
	for _, ids := range f.apps {
		for _, in := range ids {
			counts[in["status"].(string)]++
		}
	}
	var b strings.Builder
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, "%s_%d_", s, counts[s])
	}
	return b.String()
}

func (f *fakeEureka) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastPaths = append(f.lastPaths, r.URL.Path)
	if f.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "json") {
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, "<applications/>") // what Eureka does without Accept: json
		return
	}
	var apps []any
	switch r.URL.Path {
	case "/eureka/apps/", "/eureka/apps":
		f.fulls.Add(1)
		for _, name := range slices.Sorted(maps.Keys(f.apps)) {
			var insts []any
			for _, id := range slices.Sorted(maps.Keys(f.apps[name])) {
				insts = append(insts, f.apps[name][id])
			}
			var instField any = insts
			if len(insts) == 1 { // old XStream/Jettison JSON: a lone instance is an object
				instField = insts[0]
			}
			apps = append(apps, map[string]any{"name": name, "instance": instField})
		}
	case "/eureka/apps/delta":
		if f.noDelta.Load() {
			http.Error(w, "delta disabled", http.StatusForbidden)
			return
		}
		f.deltas.Add(1)
		byApp := map[string][]any{}
		for _, c := range f.changes {
			byApp[c["app"].(string)] = append(byApp[c["app"].(string)], c)
		}
		for _, name := range slices.Sorted(maps.Keys(byApp)) {
			apps = append(apps, map[string]any{"name": name, "instance": byApp[name]})
		}
	default:
		http.NotFound(w, r)
		return
	}
	hash := f.hashcode()
	if f.badHash.Load() && r.URL.Path == "/eureka/apps/delta" {
		hash = "UP_999_"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"applications": map[string]any{
		"versions__delta": fmt.Sprint(f.version), "apps__hashcode": hash, "application": apps,
	}})
}
