package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/store"
)

// InstancesFactory returns a new, empty store that reads time from clock. Stores it returns must be
// independent of each other (for Redis: a fresh key prefix or database).
type InstancesFactory func(t *testing.T, clock store.Clock) store.Instances

// TestInstances runs the store.Instances conformance suite against the stores newStore returns.
func TestInstances(t *testing.T, newStore InstancesFactory) {
	tests := []struct {
		name string
		fn   func(*testing.T, InstancesFactory)
	}{
		{"RegisterAndList", testRegisterAndList},
		{"RegisterReplaces", testRegisterReplaces},
		{"RegisterSameContentKeepsIndex", testRegisterSameContentKeepsIndex},
		{"Renew", testRenew},
		{"Deregister", testDeregister},
		{"Expiry", testExpiry},
		{"OutOfServiceNeverExpires", testOutOfServiceNeverExpires},
		{"ReRegisterAfterExpiry", testReRegisterAfterExpiry},
		{"TenantsAreIsolated", testTenantsAreIsolated},
		{"NamesCannotCollide", testNamesCannotCollide},
		{"Capacity", testCapacity},
		{"ListByService", testListByService},
		{"WaitReturnsAtOnceWhenBehind", testWaitReturnsAtOnceWhenBehind},
		{"WaitWakesOnChange", testWaitWakesOnChange},
		{"WaitWakesOnExpiry", testWaitWakesOnExpiry},
		{"WaitTimesOut", testWaitTimesOut},
		{"ConcurrentUse", testConcurrentUse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
}

const ns = "tenant-a"

func instance(service, addr string, tags ...string) store.Instance {
	return store.Instance{
		ID:          service + "-" + addr,
		ServiceName: service,
		Endpoint:    store.Endpoint{Type: "http", Value: addr},
		Status:      "UP",
		Tags:        tags,
		Metadata:    []byte(`{"zone":"eu-1","weight":3}`),
		TTL:         30 * time.Second,
	}
}

func mustRegister(t *testing.T, s store.Instances, ns string, in store.Instance) store.Instance {
	t.Helper()
	got, err := s.Register(context.Background(), ns, in, -1)
	if err != nil {
		t.Fatalf("Register(%s): %v", in.ID, err)
	}
	return got
}

func mustList(t *testing.T, s store.Instances, ns, service string) store.InstanceList {
	t.Helper()
	l, err := s.List(context.Background(), ns, service)
	if err != nil {
		t.Fatalf("List(%q, %q): %v", ns, service, err)
	}
	return l
}

func ids(l store.InstanceList) []string {
	out := make([]string, len(l.Instances))
	for i, in := range l.Instances {
		out[i] = in.ID
	}
	return out
}

func sameIDs(t *testing.T, l store.InstanceList, want ...string) {
	t.Helper()
	got := ids(l)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("instances = %v, want %v", got, want)
	}
}

func testRegisterAndList(t *testing.T, newStore InstancesFactory) {
	clock := NewClock()
	s := newStore(t, clock.Now)
	if l := mustList(t, s, ns, ""); len(l.Instances) != 0 || l.Index != 0 {
		t.Fatalf("empty store lists %d instances at index %d, want 0 at 0", len(l.Instances), l.Index)
	}
	in := instance("reviews", "10.0.0.2:9080", "version=v2", "zone=a")
	got := mustRegister(t, s, ns, in)
	if !got.LastHeartbeat.Equal(clock.Now()) {
		t.Errorf("LastHeartbeat = %v, want %v", got.LastHeartbeat, clock.Now())
	}
	mustRegister(t, s, ns, instance("details", "10.0.0.3:9080"))
	mustRegister(t, s, ns, instance("reviews", "10.0.0.1:9080"))

	l := mustList(t, s, ns, "")
	sameIDs(t, l, "details-10.0.0.3:9080", "reviews-10.0.0.1:9080", "reviews-10.0.0.2:9080")
	if l.Index != 3 {
		t.Errorf("index = %d after 3 registrations, want 3", l.Index)
	}
	stored := l.Instances[2]
	if !stored.Equal(&in) {
		t.Errorf("stored instance = %+v, want %+v", stored, in)
	}
	if string(stored.Metadata) != `{"zone":"eu-1","weight":3}` {
		t.Errorf("metadata = %s, not byte-identical", stored.Metadata)
	}
	if !stored.LastHeartbeat.Equal(clock.Now()) {
		t.Errorf("listed LastHeartbeat = %v, want %v", stored.LastHeartbeat, clock.Now())
	}
}

func testRegisterReplaces(t *testing.T, newStore InstancesFactory) {
	s := newStore(t, NewClock().Now)
	in := instance("reviews", "10.0.0.2:9080", "version=v1")
	mustRegister(t, s, ns, in)
	in.Tags = []string{"version=v2"}
	in.Status = "STARTING"
	mustRegister(t, s, ns, in)
	l := mustList(t, s, ns, "")
	sameIDs(t, l, in.ID)
	if got := l.Instances[0]; got.Status != "STARTING" || fmt.Sprint(got.Tags) != "[version=v2]" {
		t.Fatalf("replaced instance = %+v, want status STARTING tags [version=v2]", got)
	}
	if l.Index != 2 {
		t.Fatalf("index = %d after a changed re-registration, want 2", l.Index)
	}
	// The same id moving to another service (Eureka ids do not include the service) leaves the old one.
	in.ServiceName = "ratings"
	mustRegister(t, s, ns, in)
	sameIDs(t, mustList(t, s, ns, "reviews"))
	sameIDs(t, mustList(t, s, ns, "ratings"), in.ID)
}

func testRegisterSameContentKeepsIndex(t *testing.T, newStore InstancesFactory) {
	clock := NewClock()
	s := newStore(t, clock.Now)
	in := instance("reviews", "10.0.0.2:9080", "version=v1")
	mustRegister(t, s, ns, in)
	clock.Advance(10 * time.Second)
	got := mustRegister(t, s, ns, in)
	if !got.LastHeartbeat.Equal(clock.Now()) {
		t.Errorf("re-registration did not renew: LastHeartbeat = %v, want %v", got.LastHeartbeat, clock.Now())
	}
	if l := mustList(t, s, ns, ""); l.Index != 1 {
		t.Fatalf("index = %d after an identical re-registration, want 1", l.Index)
	}
}

func testRenew(t *testing.T, newStore InstancesFactory) {
	clock := NewClock()
	s := newStore(t, clock.Now)
	ctx := context.Background()
	if err := s.Renew(ctx, ns, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Renew(unknown) = %v, want ErrNotFound", err)
	}
	in := mustRegister(t, s, ns, instance("reviews", "10.0.0.2:9080"))
	for range 5 { // 5 x 20s = 100s: alive only because of the renewals
		clock.Advance(20 * time.Second)
		if err := s.Renew(ctx, ns, in.ID); err != nil {
			t.Fatalf("Renew: %v", err)
		}
	}
	l := mustList(t, s, ns, "")
	sameIDs(t, l, in.ID)
	if !l.Instances[0].LastHeartbeat.Equal(clock.Now()) {
		t.Errorf("LastHeartbeat = %v, want %v", l.Instances[0].LastHeartbeat, clock.Now())
	}
	if l.Index != 1 {
		t.Errorf("index = %d after renewals, want 1 (renewals change nothing a watcher sees)", l.Index)
	}
}

func testDeregister(t *testing.T, newStore InstancesFactory) {
	s := newStore(t, NewClock().Now)
	ctx := context.Background()
	in := mustRegister(t, s, ns, instance("reviews", "10.0.0.2:9080"))
	if err := s.Deregister(ctx, ns, in.ID); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if err := s.Deregister(ctx, ns, in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Deregister = %v, want ErrNotFound", err)
	}
	if err := s.Renew(ctx, ns, in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Renew after Deregister = %v, want ErrNotFound", err)
	}
	l := mustList(t, s, ns, "")
	sameIDs(t, l)
	if l.Index != 2 {
		t.Fatalf("index = %d after register+deregister, want 2", l.Index)
	}
}

func testExpiry(t *testing.T, newStore InstancesFactory) {
	clock := NewClock()
	s := newStore(t, clock.Now)
	ctx := context.Background()
	short := instance("reviews", "10.0.0.1:9080")
	short.TTL = 10 * time.Second
	long := instance("reviews", "10.0.0.2:9080")
	long.TTL = 60 * time.Second
	mustRegister(t, s, ns, short)
	mustRegister(t, s, ns, long)

	clock.Advance(10 * time.Second) // now - beat == ttl: still alive (expiry is strictly after)
	sameIDs(t, mustList(t, s, ns, ""), short.ID, long.ID)

	clock.Advance(time.Second)
	l := mustList(t, s, ns, "")
	sameIDs(t, l, long.ID)
	if err := s.Renew(ctx, ns, short.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Renew(expired) = %v, want ErrNotFound", err)
	}
	if err := s.Deregister(ctx, ns, short.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Deregister(expired) = %v, want ErrNotFound", err)
	}

	before := mustList(t, s, ns, "").Index
	clock.Advance(60 * time.Second)
	n, err := s.Reap(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reap = %d, %v; want 1 removed", n, err)
	}
	after := mustList(t, s, ns, "")
	sameIDs(t, after)
	if after.Index <= before {
		t.Fatalf("index %d did not rise past %d on expiry", after.Index, before)
	}
	if n, err := s.Reap(ctx); err != nil || n != 0 {
		t.Fatalf("second Reap = %d, %v; want 0", n, err)
	}
	if got := mustList(t, s, ns, "").Index; got != after.Index {
		t.Fatalf("index moved from %d to %d on a Reap that removed nothing", after.Index, got)
	}
}

func testOutOfServiceNeverExpires(t *testing.T, newStore InstancesFactory) {
	clock := NewClock()
	s := newStore(t, clock.Now)
	in := instance("reviews", "10.0.0.2:9080")
	in.Status = "OUT_OF_SERVICE"
	mustRegister(t, s, ns, in)
	clock.Advance(1000 * time.Hour)
	if _, err := s.Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := mustList(t, s, ns, "")
	sameIDs(t, l, in.ID)
	if l.Instances[0].TTL != in.TTL {
		t.Errorf("TTL = %v, want the registered %v kept", l.Instances[0].TTL, in.TTL)
	}
	if err := s.Renew(context.Background(), ns, in.ID); err != nil {
		t.Fatalf("Renew(out of service) = %v", err)
	}
	// Back in service, the lease applies again.
	in.Status = "UP"
	mustRegister(t, s, ns, in)
	clock.Advance(31 * time.Second)
	sameIDs(t, mustList(t, s, ns, ""))
}

func testReRegisterAfterExpiry(t *testing.T, newStore InstancesFactory) {
	clock := NewClock()
	s := newStore(t, clock.Now)
	in := instance("reviews", "10.0.0.2:9080")
	mustRegister(t, s, ns, in)
	clock.Advance(31 * time.Second)
	before := mustList(t, s, ns, "").Index
	mustRegister(t, s, ns, in) // identical content, but the old lease had run out: a new registration
	l := mustList(t, s, ns, "")
	sameIDs(t, l, in.ID)
	if l.Index <= before {
		t.Fatalf("index = %d, want above %d: an expired instance coming back is a change", l.Index, before)
	}
}

func testTenantsAreIsolated(t *testing.T, newStore InstancesFactory) {
	s := newStore(t, NewClock().Now)
	ctx := context.Background()
	a := mustRegister(t, s, "a", instance("reviews", "10.0.0.1:9080"))
	mustRegister(t, s, "b", instance("ratings", "10.0.0.9:9080"))
	sameIDs(t, mustList(t, s, "a", ""), a.ID)
	sameIDs(t, mustList(t, s, "b", ""), "ratings-10.0.0.9:9080")
	if err := s.Renew(ctx, "b", a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tenant b renewed tenant a's instance: %v", err)
	}
	if err := s.Deregister(ctx, "b", a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tenant b deregistered tenant a's instance: %v", err)
	}
	sameIDs(t, mustList(t, s, "a", ""), a.ID)
	// The same instance ID in two tenants is two instances.
	mustRegister(t, s, "b", instance("reviews", "10.0.0.1:9080", "other"))
	if got := mustList(t, s, "a", "").Instances[0].Tags; len(got) != 0 {
		t.Fatalf("tenant b's registration changed tenant a's instance: tags %v", got)
	}
	if l := mustList(t, s, "a", ""); l.Index != 1 {
		t.Fatalf("tenant a index = %d, want 1: other tenants' changes must not move it", l.Index)
	}
}

func testCapacity(t *testing.T, newStore InstancesFactory) {
	clock := NewClock()
	s := newStore(t, clock.Now)
	ctx := context.Background()
	reg := func(in store.Instance) error { _, err := s.Register(ctx, ns, in, 2); return err }
	a, b, c := instance("x", "1:1"), instance("x", "2:2"), instance("x", "3:3")
	if err := reg(a); err != nil {
		t.Fatal(err)
	}
	if err := reg(b); err != nil {
		t.Fatal(err)
	}
	if err := reg(c); !errors.Is(err, store.ErrCapacity) {
		t.Fatalf("third instance with capacity 2: %v, want ErrCapacity", err)
	}
	a.Tags = []string{"changed"}
	if err := reg(a); err != nil {
		t.Fatalf("updating an existing instance at capacity: %v", err)
	}
	if _, err := s.Register(ctx, "other", c, 2); err != nil {
		t.Fatalf("capacity is per tenant, but another tenant was refused: %v", err)
	}
	sameIDs(t, mustList(t, s, ns, ""), a.ID, b.ID)
	clock.Advance(31 * time.Second) // both expire: room again, reaped or not
	if err := reg(c); err != nil {
		t.Fatalf("registering after the others expired: %v", err)
	}
	sameIDs(t, mustList(t, s, ns, ""), c.ID)
}

func testListByService(t *testing.T, newStore InstancesFactory) {
	clock := NewClock()
	s := newStore(t, clock.Now)
	mustRegister(t, s, ns, instance("reviews", "10.0.0.2:9080"))
	mustRegister(t, s, ns, instance("reviews", "10.0.0.1:9080"))
	mustRegister(t, s, ns, instance("ratings", "10.0.0.3:9080"))
	short := instance("reviews", "10.0.0.4:9080")
	short.TTL = time.Second
	mustRegister(t, s, ns, short)
	clock.Advance(2 * time.Second)
	l := mustList(t, s, ns, "reviews")
	sameIDs(t, l, "reviews-10.0.0.1:9080", "reviews-10.0.0.2:9080")
	if l.Index != 4 {
		t.Fatalf("index = %d, want the tenant's index 4", l.Index)
	}
	sameIDs(t, mustList(t, s, ns, "nothing"))
}

func testWaitReturnsAtOnceWhenBehind(t *testing.T, newStore InstancesFactory) {
	s := newStore(t, NewClock().Now)
	mustRegister(t, s, ns, instance("reviews", "10.0.0.2:9080"))
	mustRegister(t, s, ns, instance("reviews", "10.0.0.3:9080"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, after := range []uint64{0, 1, 99} { // 99: the client's index is from before a reset
		got, err := s.Wait(ctx, ns, after)
		if err != nil || got != 2 {
			t.Fatalf("Wait(after=%d) = %d, %v; want 2 at once", after, got, err)
		}
	}
}

func testWaitWakesOnChange(t *testing.T, newStore InstancesFactory) {
	s := newStore(t, NewClock().Now)
	in := mustRegister(t, s, ns, instance("reviews", "10.0.0.2:9080"))
	done := make(chan uint64, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		idx, _ := s.Wait(ctx, ns, 1)
		done <- idx
	}()
	// Changes that are not changes, and changes of other tenants, must not wake the watcher.
	if err := s.Renew(ctx, ns, in.ID); err != nil {
		t.Fatal(err)
	}
	mustRegister(t, s, "other", instance("reviews", "10.0.0.2:9080"))
	select {
	case idx := <-done:
		t.Fatalf("Wait returned %d without a change in its tenant", idx)
	case <-time.After(50 * time.Millisecond):
	}
	if err := s.Deregister(ctx, ns, in.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case idx := <-done:
		if idx != 2 {
			t.Fatalf("Wait woke with index %d, want 2", idx)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not wake on a deregistration")
	}
}

func testWaitWakesOnExpiry(t *testing.T, newStore InstancesFactory) {
	clock := NewClock()
	s := newStore(t, clock.Now)
	mustRegister(t, s, ns, instance("reviews", "10.0.0.2:9080"))
	done := make(chan uint64, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		idx, _ := s.Wait(ctx, ns, 1)
		done <- idx
	}()
	clock.Advance(time.Minute)
	if _, err := s.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case idx := <-done:
		if idx <= 1 {
			t.Fatalf("Wait woke with index %d, want > 1", idx)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not wake when an instance expired")
	}
}

func testWaitTimesOut(t *testing.T, newStore InstancesFactory) {
	s := newStore(t, NewClock().Now)
	mustRegister(t, s, ns, instance("reviews", "10.0.0.2:9080"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	got, err := s.Wait(ctx, ns, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %d, %v; want a deadline error", got, err)
	}
	if got != 1 {
		t.Fatalf("Wait returned index %d on timeout, want the current 1", got)
	}
}

func testConcurrentUse(t *testing.T, newStore InstancesFactory) {
	s := newStore(t, NewClock().Now)
	ctx := context.Background()
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*3)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				in := instance(fmt.Sprintf("svc%d", w%3), fmt.Sprintf("10.%d.0.%d:80", w, i))
				if _, err := s.Register(ctx, ns, in, -1); err != nil {
					errs <- err
				}
				if err := s.Renew(ctx, ns, in.ID); err != nil {
					errs <- err
				}
				if _, err := s.List(ctx, ns, in.ServiceName); err != nil {
					errs <- err
				}
				if i%2 == 1 {
					if err := s.Deregister(ctx, ns, in.ID); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l := mustList(t, s, ns, "")
	if want := workers * (each - each/2); len(l.Instances) != want {
		t.Fatalf("%d instances left, want %d", len(l.Instances), want)
	}
	if want := uint64(workers * (each + each/2)); l.Index != want {
		t.Fatalf("index = %d, want %d (one per register and deregister)", l.Index, want)
	}
}

// Names with the characters a backend might use to build keys ({, }, :, %, spaces, non-ASCII) must not
// let one tenant or service reach into another's data.
func testNamesCannotCollide(t *testing.T, newStore InstancesFactory) {
	s := newStore(t, NewClock().Now)
	ctx := context.Background()
	weird := []string{"x", "x}:service:s", "x}", "{x}", "x%7D", "x:y", "x y", "é✓", "x\tz"}
	for i, tenant := range weird {
		for j, service := range weird {
			in := instance(service, fmt.Sprintf("10.0.%d.%d:80", i, j))
			in.ID = fmt.Sprintf("id-%d-%d", i, j)
			if _, err := s.Register(ctx, tenant, in, -1); err != nil {
				t.Fatalf("Register(tenant %q, service %q): %v", tenant, service, err)
			}
		}
	}
	for i, tenant := range weird {
		l := mustList(t, s, tenant, "")
		if len(l.Instances) != len(weird) || l.Index != uint64(len(weird)) {
			t.Fatalf("tenant %q: %d instances at index %d, want %d at %d", tenant, len(l.Instances), l.Index, len(weird), len(weird))
		}
		for j, service := range weird {
			sameIDs(t, mustList(t, s, tenant, service), fmt.Sprintf("id-%d-%d", i, j))
		}
	}
	// Moving an instance between oddly named services updates both service views.
	in := instance("{a}:b", "10.9.9.9:80")
	mustRegister(t, s, "x}", in)
	in.ServiceName = "c%d é"
	mustRegister(t, s, "x}", in)
	sameIDs(t, mustList(t, s, "x}", "{a}:b"))
	sameIDs(t, mustList(t, s, "x}", "c%d é"), in.ID)
	if err := s.Deregister(ctx, "x}", in.ID); err != nil {
		t.Fatal(err)
	}
	sameIDs(t, mustList(t, s, "x}", "c%d é"))
}
