package eureka_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/eureka"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
)

func onlyInstance(t *testing.T, a *eureka.Applications) *eureka.Instance {
	t.Helper()
	if len(a.Applications) != 1 || len(a.Applications[0].Instances) != 1 {
		t.Fatalf("want one instance: %s", ids(a))
	}
	return a.Applications[0].Instances[0]
}

// TestDelta follows the delta queue through ADDED, MODIFIED and DELETED, its retention, and changes
// that reach it through the store (expiry, another API).
func TestDelta(t *testing.T) {
	clock := manualClock()
	s := memory.NewInstances(clock.Now)
	e, _ := newEureka(t, eureka.Config{Store: s, Clock: clock.Now})
	const p = "/eureka/v2"

	full := e.apps(p) // the namespace's first Eureka request: its view starts here
	if full.VersionsDelta != 1 || full.AppsHashcode != "" || len(full.Applications) != 0 {
		t.Fatalf("empty registry: %+v", full)
	}
	if r := e.do("GET", p+"/apps/delta", "", jsonAccept); !strings.Contains(string(r.body), `"application":[]`) {
		t.Fatalf("empty delta: %s", r.body) // an empty array, which eureka-js-client iterates
	}

	// Leases of 200 s, so that A and B outlive the retention period without heartbeats.
	a1 := instanceJSON("A", "a1", "10.0.0.1", 8080, `"leaseInfo":{"durationInSecs":200}`)
	e.registerJSON(p, "A", a1)
	e.registerJSON(p, "B", instanceJSON("B", "b1", "10.0.0.2", 8080, `"leaseInfo":{"durationInSecs":200}`))
	d := e.delta(p)
	if ids(d) != "A/a1=ADDED B/b1=ADDED" || d.AppsHashcode != "UP_2_" {
		t.Fatalf("after two registrations: %s %s", ids(d), d.AppsHashcode)
	}
	v := d.VersionsDelta

	// The same registration again changes nothing: no new version, nothing new in the delta.
	clock.Advance(time.Second)
	e.registerJSON(p, "A", a1)
	if d := e.delta(p); d.VersionsDelta != v || ids(d) != "A/a1=ADDED B/b1=ADDED" {
		t.Fatalf("an identical registration changed the registry: %d %s", d.VersionsDelta, ids(d))
	}

	// Changes leave the delta after the retention period (3 minutes).
	clock.Advance(3*time.Minute + time.Second)
	if d := e.delta(p); ids(d) != "" || d.AppsHashcode != "UP_2_" || d.VersionsDelta != v {
		t.Fatalf("after the retention period: %s %s", ids(d), d.AppsHashcode)
	}

	// MODIFIED: a status override; the hash code counts the new status.
	e.do("PUT", p+"/apps/A/a1/status?value=OUT_OF_SERVICE", "").want(t, 200)
	d = e.delta(p)
	if ids(d) != "A/a1=MODIFIED" || d.AppsHashcode != "OUT_OF_SERVICE_1_UP_1_" || d.VersionsDelta <= v {
		t.Fatalf("after an override: %s %s %d", ids(d), d.AppsHashcode, d.VersionsDelta)
	}
	if in := onlyInstance(t, d); in.EffectiveStatus() != "OUT_OF_SERVICE" {
		t.Fatalf("modified instance: %+v", in)
	}

	// DELETED: a cancel. The delta shows the instance as it was last.
	e.do("DELETE", p+"/apps/B/b1", "").want(t, 200)
	d = e.delta(p)
	if ids(d) != "A/a1=MODIFIED B/b1=DELETED" || d.AppsHashcode != "OUT_OF_SERVICE_1_" {
		t.Fatalf("after a cancel: %s %s", ids(d), d.AppsHashcode)
	}
	// An instance added and removed within the period: only its last change.
	e.registerJSON(p, "C", instanceJSON("C", "c1", "10.0.0.3", 8080))
	e.do("DELETE", p+"/apps/C/c1", "").want(t, 200)
	if d := e.delta(p); ids(d) != "A/a1=MODIFIED B/b1=DELETED C/c1=DELETED" {
		t.Fatalf("added then cancelled: %s", ids(d))
	}

	// Changes that do not go through this API reach the delta through the store's index: an
	// expiry (10 s lease, reaped), and a registration through another API.
	clock.Advance(3*time.Minute + time.Second)
	e.registerJSON(p, "SHORT", instanceJSON("SHORT", "s1", "10.0.0.4", 8080, `"leaseInfo":{"durationInSecs":10}`))
	clock.Advance(30 * time.Second)
	e.do("PUT", p+"/apps/A/a1", "").want(t, 404) // A's lease ran out too (last renewed by its override)
	if n, err := s.Reap(context.Background()); err != nil || n != 2 {
		t.Fatalf("reap: %d %v", n, err)
	}
	eventually(t, "expiries in the delta", func() bool {
		return ids(e.delta(p)) == "A/a1=DELETED SHORT/s1=DELETED"
	})
	if _, err := s.Register(context.Background(), "default", store.Instance{ID: "0123456789abcdef", ServiceName: "native",
		Endpoint: store.Endpoint{Type: "http", Value: "10.1.1.1:80"}, Status: "UP", TTL: time.Minute}, -1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a native registration in the delta", func() bool {
		d := e.delta(p)
		return ids(d) == "A/a1=DELETED NATIVE/0123456789abcdef=ADDED SHORT/s1=DELETED" && d.AppsHashcode == "UP_1_"
	})
	full = e.apps(p)
	if ids(full) != "NATIVE/0123456789abcdef" || full.AppsHashcode != "UP_1_" {
		t.Fatalf("full: %s %s", ids(full), full.AppsHashcode)
	}
}

// client is a Eureka client's local registry: a full fetch, then deltas applied by actionType, then
// checked against the server's apps__hashcode, as the Java client does.
type client struct {
	local map[string]*eureka.Instance // by APP/instanceId
}

func (c *client) full(a *eureka.Applications) {
	c.local = map[string]*eureka.Instance{}
	for _, app := range a.Applications {
		for _, in := range app.Instances {
			c.local[app.Name+"/"+in.InstanceID] = in
		}
	}
}

func (c *client) apply(d *eureka.Applications) {
	for _, app := range d.Applications {
		for _, in := range app.Instances {
			key := app.Name + "/" + in.InstanceID
			switch in.ActionType {
			case eureka.ActionAdded, eureka.ActionModified:
				c.local[key] = in
			case eureka.ActionDeleted:
				delete(c.local, key)
			}
		}
	}
}

func (c *client) hash() string {
	app := &eureka.Application{}
	for _, in := range c.local {
		app.Instances = append(app.Instances, in)
	}
	return eureka.HashCode([]*eureka.Application{app})
}

func (c *client) ids() string {
	return strings.Join(slices.Sorted(maps.Keys(c.local)), " ")
}

// TestDelta_Reconcile: a client that fetches everything once and then only deltas stays equal to the
// registry through random registrations, overrides and cancels, and its hash code agrees with the
// server's every time (so a Java client never falls back to a full fetch).
func TestDelta_Reconcile(t *testing.T) {
	clock := manualClock()
	s := memory.NewInstances(clock.Now)
	e, _ := newEureka(t, eureka.Config{Store: s, Clock: clock.Now})
	const p = "/eureka"
	var c client
	c.full(e.apps(p))
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []string{"UP", "DOWN", "OUT_OF_SERVICE", "STARTING"}
	for step := range 200 {
		app := fmt.Sprintf("APP%d", rng.IntN(3))
		id := fmt.Sprintf("%s-%d", strings.ToLower(app), rng.IntN(4))
		switch rng.IntN(4) {
		case 0, 1:
			e.registerJSON(p, app, instanceJSON(app, id, "10.0.0.1", 8000+rng.IntN(3)))
		case 2:
			e.do("PUT", fmt.Sprintf("%s/apps/%s/%s/status?value=%s", p, app, id, statuses[rng.IntN(len(statuses))]), "")
		case 3:
			e.do("DELETE", fmt.Sprintf("%s/apps/%s/%s", p, app, id), "")
		}
		clock.Advance(time.Second)
		if rng.IntN(3) > 0 { // the client does not fetch after every change
			continue
		}
		d := e.delta(p)
		c.apply(d)
		full := e.apps(p)
		if c.hash() != d.AppsHashcode || d.AppsHashcode != full.AppsHashcode || c.ids() != idsSorted(full) {
			t.Fatalf("step %d: client %s (%s), delta hash %s, server %s (%s)", step, c.ids(), c.hash(), d.AppsHashcode, idsSorted(full), full.AppsHashcode)
		}
	}
}

func idsSorted(a *eureka.Applications) string {
	var out []string
	for _, app := range a.Applications {
		for _, in := range app.Instances {
			out = append(out, app.Name+"/"+in.InstanceID)
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestDelta_Replicas: two registry replicas on one store each build a correct delta, whichever
// replica a change went through.
func TestDelta_Replicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		a, _ := newEureka(t, eureka.Config{Store: b.open(t, nil)})
		bb, _ := newEureka(t, eureka.Config{Store: b.open(t, nil)})
		const p = "/eureka/v2"
		if got := ids(bb.apps(p)); got != "" {
			t.Fatalf("replica b starts with %s", got)
		}
		a.registerJSON(p, "DEMO", instanceJSON("DEMO", "d1", "10.0.0.1", 8080))
		eventually(t, "replica b's delta to show the registration on a", func() bool {
			return ids(bb.delta(p)) == "DEMO/d1=ADDED"
		})
		if got := ids(bb.apps(p)); got != "DEMO/d1" {
			t.Fatalf("replica b: %s", got)
		}
		// The same registration again (a client restarting) only renews: the stored record is
		// byte for byte the same on every backend, so nothing is MODIFIED.
		v := a.delta(p).VersionsDelta
		a.registerJSON(p, "DEMO", instanceJSON("DEMO", "d1", "10.0.0.1", 8080))
		if d := a.delta(p); ids(d) != "DEMO/d1=ADDED" || d.VersionsDelta != v {
			t.Fatalf("an identical registration: %s, version %d then %d", ids(d), v, d.VersionsDelta)
		}
		a.do("PUT", p+"/apps/DEMO/d1/status?value=OUT_OF_SERVICE", "").want(t, 200)
		eventually(t, "replica b's delta to show the override on a", func() bool {
			d := bb.delta(p)
			return ids(d) == "DEMO/d1=MODIFIED" && d.AppsHashcode == "OUT_OF_SERVICE_1_"
		})
		// Replica b changes what a registered: b's own view is current at once.
		bb.do("DELETE", p+"/apps/DEMO/d1/status", "").want(t, 200)
		if in := bb.instance(p + "/apps/DEMO/d1"); in.EffectiveStatus() != "UP" {
			t.Fatalf("replica b after removing the override: %+v", in)
		}
		bb.do("DELETE", p+"/apps/DEMO/d1", "").want(t, 200)
		eventually(t, "replica a's delta to show the cancel on b", func() bool {
			d := a.delta(p)
			return ids(d) == "DEMO/d1=DELETED" && d.AppsHashcode == ""
		})
		a.do("PUT", p+"/apps/DEMO/d1", "").want(t, 404)
	})
}
