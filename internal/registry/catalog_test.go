package registry_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/catalog/catalogtest"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store/memory"
	"github.com/a8fabric/a8/internal/store/storetest"
)

// Catalog instances are listed like registered ones, and every write to one answers 409 with the
// catalog's name.
func TestRegistry_CatalogInstances(t *testing.T) {
	clock := storetest.NewClock()
	k8s := catalogtest.New("kubernetes")
	k8s.Set("default", catalogtest.Instance("pod-1-9080", "reviews", "10.1.0.1:9080", "version=v1"))
	e := start(t, catalog.Merge(memory.NewInstances(clock.Now), k8s), clock, nil, func(c *registry.Config) {
		c.Catalogs = []catalog.Catalog{k8s}
	})
	mine := e.register("", reg("reviews", "10.0.0.1:9080", with("tags", []string{"version=v2"})))

	if got := field(e.list("", ""), "id"); strings.Join(got, ",") != mine+",pod-1-9080" && strings.Join(got, ",") != "pod-1-9080,"+mine {
		t.Fatalf("list ids = %v; want the registered and the catalog instance", got)
	}
	if got := field(e.list("", "?tags=version=v1"), "id"); len(got) != 1 || got[0] != "pod-1-9080" {
		t.Fatalf("tag filter: %v", got)
	}
	var svc api.ServiceInstances
	e.do("GET", "/api/v1/services/reviews", "", nil).decode(t, &svc)
	if len(svc.Instances) != 2 {
		t.Fatalf("service reviews: %+v", svc)
	}

	for _, tc := range []struct{ method, path, op string }{
		{"PUT", "/api/v1/instances/pod-1-9080/heartbeat", "heartbeat"},
		{"DELETE", "/api/v1/instances/pod-1-9080", "deregistration"},
	} {
		r := e.do(tc.method, tc.path, "", nil)
		if r.code != http.StatusConflict || r.errorText(t) != tc.op+" refused: instance pod-1-9080 belongs to the kubernetes catalog: change it there, not through the registry" {
			t.Errorf("%s %s: %s", tc.method, tc.path, r)
		}
	}
	// A registration that computes a catalog instance's id is refused the same way.
	k8s.Set("default", catalogtest.Instance(registry.InstanceID("weather", "http", "10.9.0.1:80"), "weather", "10.9.0.1:80"))
	r := e.do("POST", "/api/v1/instances", "", reg("weather", "10.9.0.1:80"))
	if r.code != http.StatusConflict || !strings.Contains(r.errorText(t), "belongs to the kubernetes catalog") {
		t.Errorf("registering a catalog's endpoint: %s", r)
	}
	// The registered instance is still the registry's.
	if r := e.do("PUT", "/api/v1/instances/"+mine+"/heartbeat", "", nil); r.code != 200 {
		t.Errorf("heartbeat of a registered instance: %s", r)
	}
	if r := e.do("DELETE", "/api/v1/instances/unknown", "", nil); r.code != http.StatusGone {
		t.Errorf("an unknown id is still 410: %s", r)
	}

	// /uptime reports each catalog, without making the registry unhealthy.
	k8s.Failed("cannot reach https://k8s:6443: connection refused")
	var up struct {
		UPTIME struct {
			Healthy    bool
			Properties map[string]any
		}
	}
	r = e.do("GET", "/uptime", "", nil)
	r.decode(t, &up)
	cats, _ := up.UPTIME.Properties["catalogs"].(map[string]any)
	kst, _ := cats["kubernetes"].(map[string]any)
	if r.code != 200 || !up.UPTIME.Healthy || kst["ok"] != false || kst["detail"] != "cannot reach https://k8s:6443: connection refused" ||
		kst["instances"] != float64(1) || up.UPTIME.Properties["uptime"] == nil {
		t.Fatalf("/uptime: %s", r)
	}
}

// Eureka's DOWN and UNKNOWN are not routable: a query without a status leaves them out.
func TestRegistry_EurekaStatusesNotRoutable(t *testing.T) {
	clock := storetest.NewClock()
	cat := catalogtest.New("eureka")
	up, down, unknown := catalogtest.Instance("APP:1", "app", "10.0.0.1:80"), catalogtest.Instance("APP:2", "app", "10.0.0.2:80"), catalogtest.Instance("APP:3", "app", "10.0.0.3:80")
	down.Status, unknown.Status = "DOWN", "UNKNOWN"
	cat.Set("default", up, down, unknown)
	e := start(t, catalog.Merge(memory.NewInstances(clock.Now), cat), clock, nil, nil)
	if got := field(e.list("", ""), "id"); strings.Join(got, ",") != "APP:1" {
		t.Fatalf("default list: %v", got)
	}
	if got := field(e.list("", "?status=DOWN"), "id"); strings.Join(got, ",") != "APP:2" {
		t.Fatalf("status=DOWN: %v", got)
	}
	if got := field(e.list("", "?status=ALL"), "id"); len(got) != 3 {
		t.Fatalf("status=ALL: %v", got)
	}
}
