package eureka_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/hudl/fargo"
)

// TestFargo drives the registry with a real Eureka client, hudl/fargo, in JSON and in XML, on each
// store backend and under each path style.
func TestFargo(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		for _, format := range []string{"json", "xml"} {
			for _, prefix := range []string{"/eureka/v2", "/eureka", "/api/eureka/default/v2"} {
				t.Run(format+prefix, func(t *testing.T) {
					e := newRegistry(t, b.open(t, nil), nil)
					c := fargo.NewConn(e.url + prefix)
					c.UseJson = format == "json"
					fargoLifecycle(t, e, &c, prefix)
				})
			}
		}
	})
}

func fargoLifecycle(t *testing.T, e *env, c *fargo.EurekaConnection, prefix string) {
	// Unique per subtest: the Redis backend is shared by the subtests of one run.
	id := fmt.Sprintf("demo-%d", prefixes.Add(1))
	vip := fmt.Sprintf("demo%d", prefixes.Add(1))
	ins := &fargo.Instance{
		InstanceId: id, HostName: "localhost", App: "DEMO", IPAddr: "127.0.0.1",
		VipAddress: vip, SecureVipAddress: vip, Status: fargo.UP,
		Port: 8080, PortEnabled: true, SecurePort: 8443,
		DataCenterInfo: fargo.DataCenterInfo{Name: fargo.MyOwn},
		LeaseInfo:      fargo.LeaseInfo{RenewalIntervalInSecs: 30, DurationInSecs: 90},
	}
	ins.SetMetadataString("amalgam8.tags", "version=v1;zone=a")
	ins.SetMetadataString("zone", "a")

	// Register (GET, 404, POST 204, GET back) and heartbeat.
	if err := c.RegisterInstance(ins); err != nil {
		t.Fatalf("register: %v", err)
	}
	if ins.InstanceId != id || ins.Port != 8080 || !ins.PortEnabled || ins.SecurePortEnabled || ins.Status != fargo.UP {
		t.Fatalf("read back after register: %+v", ins)
	}
	if err := c.RegisterInstance(ins); err != nil { // already there: a GET only
		t.Fatalf("register again: %v", err)
	}
	if err := c.HeartBeatInstance(ins); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}

	// Reads.
	apps, err := c.GetApps()
	if err != nil {
		t.Fatalf("get apps: %v", err)
	}
	app := apps["DEMO"]
	if app == nil || !slices.ContainsFunc(app.Instances, func(i *fargo.Instance) bool { return i.InstanceId == id }) {
		t.Fatalf("GetApps: DEMO/%s missing: %+v", id, apps)
	}
	one, err := c.GetApp("DEMO")
	if err != nil || len(one.Instances) == 0 {
		t.Fatalf("GetApp: %v %+v", err, one)
	}
	got, err := c.GetInstance("DEMO", id)
	if err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	if got.IPAddr != "127.0.0.1" || got.HostName != "localhost" || got.VipAddress != vip || got.DataCenterInfo.Name != fargo.MyOwn ||
		got.LeaseInfo.DurationInSecs != 90 || got.LeaseInfo.RenewalIntervalInSecs != 30 || got.LeaseInfo.LastRenewalTimestamp == 0 {
		t.Fatalf("GetInstance: %+v", got)
	}
	// fargo parses metadata in GetApp(s) only.
	if v, err := one.Instances[0].Metadata.GetString("zone"); err != nil || v != "a" {
		t.Fatalf("metadata zone = %q, %v", v, err)
	}
	for _, secure := range []bool{false, true} {
		list, err := c.GetInstancesByVIPAddress(vip, secure)
		if err != nil || len(list) != 1 || list[0].InstanceId != id {
			t.Fatalf("GetInstancesByVIPAddress(%s, secure %v) = %v, %v", vip, secure, list, err)
		}
	}
	if _, err := c.GetInstancesByVIPAddress("no-such-vip", false); err == nil {
		t.Fatal("GetInstancesByVIPAddress of an unknown VIP: no error")
	} else if code, _ := fargo.HTTPResponseStatusCode(err); code != http.StatusNotFound {
		t.Fatalf("unknown VIP: %v", err)
	}

	// The registered instance is an a8 instance: service = VIP, endpoint ipAddr:port, tags.
	a8 := findService(e.a8List("?status=ALL"), vip)
	if a8 == nil {
		t.Fatalf("Amalgam8 API does not list service %s: %v", vip, e.a8List("?status=ALL"))
	}
	if ep := a8["endpoint"].(map[string]any); ep["type"] != "http" || ep["value"] != "127.0.0.1:8080" ||
		fmt.Sprint(a8["tags"]) != "[version=v1 zone=a]" || a8["status"] != "UP" || a8["ttl"] != float64(90) {
		t.Fatalf("a8 instance: %v", a8)
	}

	// Status override: OUT_OF_SERVICE shows to Eureka clients and survives heartbeats; the
	// instance leaves the routable list.
	if err := c.UpdateInstanceStatus(ins, fargo.OUTOFSERVICE); err != nil {
		t.Fatalf("UpdateInstanceStatus: %v", err)
	}
	if err := c.HeartBeatInstance(ins); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	got, _ = c.GetInstance("DEMO", id)
	if got.Status != fargo.OUTOFSERVICE || got.Overriddenstatus != fargo.OUTOFSERVICE {
		t.Fatalf("after override: status %s, overridden %s", got.Status, got.Overriddenstatus)
	}
	if findService(e.a8List(""), vip) != nil {
		t.Fatal("an OUT_OF_SERVICE Eureka instance is in the routable list")
	}
	if a := findService(e.a8List("?status=ALL"), vip); a == nil || a["status"] != "DOWN" {
		t.Fatalf("OUT_OF_SERVICE is a8 DOWN: %v", a)
	}
	// fargo has no call to remove an override: DELETE .../status.
	e.do("DELETE", prefix+"/apps/DEMO/"+id+"/status", "").want(t, http.StatusOK)
	got, _ = c.GetInstance("DEMO", id)
	if got.Status != fargo.UP || got.Overriddenstatus != fargo.UNKNOWN {
		t.Fatalf("after removing the override: status %s, overridden %s", got.Status, got.Overriddenstatus)
	}

	// Metadata: merged; amalgam8.tags changes the a8 tags.
	if err := c.AddMetadataString(ins, "color", "blue"); err != nil {
		t.Fatalf("AddMetadataString: %v", err)
	}
	if err := c.AddMetadataString(ins, "amalgam8.tags", "version=v2"); err != nil {
		t.Fatalf("AddMetadataString: %v", err)
	}
	one, _ = c.GetApp("DEMO")
	for _, in := range one.Instances {
		if in.InstanceId != id {
			continue
		}
		m := in.Metadata.GetMap()
		if m["color"] != "blue" || m["zone"] != "a" || m["amalgam8.tags"] != "version=v2" {
			t.Fatalf("metadata after update: %v", m)
		}
	}
	if a := findService(e.a8List(""), vip); a == nil || fmt.Sprint(a["tags"]) != "[version=v2]" {
		t.Fatalf("tags after metadata update: %v", a)
	}

	// An instance registered through the Amalgam8 API shows to fargo.
	native := fmt.Sprintf("native%d", prefixes.Add(1))
	e.do("POST", "/api/v1/instances", fmt.Sprintf(`{"service_name":%q,"endpoint":{"type":"http","value":"10.0.0.9:9080"},"tags":["version=v1"],"ttl":60}`, native),
		"Content-Type: application/json").want(t, http.StatusCreated)
	// Another API's write reaches the Eureka view through the store's change feed, a moment later.
	var list []*fargo.Instance
	eventually(t, "the native instance to show to fargo", func() bool {
		list, err = c.GetInstancesByVIPAddress(native, false)
		return err == nil && len(list) == 1
	})
	n := list[0]
	if n.App != upper(native) || n.IPAddr != "10.0.0.9" || n.Port != 9080 || !n.PortEnabled || n.Status != fargo.UP || len(n.InstanceId) != 16 {
		t.Fatalf("native instance: %+v", n)
	}
	if g, err := c.GetInstance(upper(native), n.InstanceId); err != nil || g.IPAddr != "10.0.0.9" {
		t.Fatalf("native GetInstance: %+v %v", g, err)
	}
	if err := c.HeartBeatInstance(n); err != nil {
		t.Fatalf("heartbeat of a native instance: %v", err)
	}

	// Deregister: gone for both APIs; a heartbeat then gets 404 (so a client registers again).
	if err := c.DeregisterInstance(ins); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	if _, err := c.GetInstance("DEMO", id); err == nil {
		t.Fatal("GetInstance after deregister: no error")
	}
	if err := c.HeartBeatInstance(ins); err == nil {
		t.Fatal("heartbeat after deregister: no error")
	} else if code, _ := fargo.HTTPResponseStatusCode(err); code != http.StatusNotFound {
		t.Fatalf("heartbeat after deregister: %v", err)
	}
	if err := c.DeregisterInstance(ins); err == nil {
		t.Fatal("second deregister: no error")
	}
	if findService(e.a8List("?status=ALL"), vip) != nil {
		t.Fatal("Amalgam8 API still lists the deregistered instance")
	}
}

func findService(list []map[string]any, service string) map[string]any {
	for _, in := range list {
		if in["service_name"] == service {
			return in
		}
	}
	return nil
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
