package bookinfo

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	review1 = "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"
	review2 = "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."
)

var details7 = `{"id":7,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}` + "\n"

func TestHealthAndUnknownPaths(t *testing.T) {
	t.Parallel()
	f := newFabric(t, defaultOptions(), "productpage", "details", "reviews", "ratings")
	for name, in := range f.svc {
		resp, body := get(t, in.url+"/health")
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Errorf("%s /health: %d %q", name, resp.StatusCode, body)
		}
		for _, path := range []string{"/", "/nope", "/details", "/reviews/", "/api/v1/products", "/productpage/x"} {
			if resp, body := get(t, in.url+path); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: %d %q, want 404", name, path, resp.StatusCode, body)
			}
		}
	}
	// Each service serves its own paths only.
	for _, c := range []struct{ service, path string }{
		{"details", "/ratings/0"}, {"details", "/productpage"}, {"ratings", "/details/0"},
		{"reviews", "/ratings/0"}, {"productpage", "/reviews/0"}, {"ratings", "/login"},
	} {
		if resp, _ := get(t, f.svc[c.service].url+c.path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", c.service, c.path, resp.StatusCode)
		}
	}
	if resp, err := testClient.Post(f.svc["details"].url+"/health", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /health: %v %v, want 405", resp, err)
	} else {
		resp.Body.Close()
	}
}

func TestDetails(t *testing.T) {
	t.Parallel()
	f := newFabric(t, defaultOptions(), "details")
	var d Details
	body := getJSON(t, f.svc["details"].url+"/details/7", &d)
	if body != details7 {
		t.Errorf("details:\n got %s\nwant %s", body, details7)
	}
}

func TestRatings(t *testing.T) {
	t.Parallel()
	f := newFabric(t, defaultOptions(), "ratings")
	var r Ratings
	body := getJSON(t, f.svc["ratings"].url+"/ratings/3", &r)
	if want := `{"id":3,"ratings":{"Reviewer1":5,"Reviewer2":4}}` + "\n"; body != want {
		t.Errorf("ratings:\n got %s\nwant %s", body, want)
	}
}

func TestReviewsVersions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ version, want string }{
		{"v1", `{"id":2,"version":"v1","reviews":[{"reviewer":"Reviewer1","text":"` + review1 + `"},{"reviewer":"Reviewer2","text":"` + review2 + `"}]}`},
		{"v2", `{"id":2,"version":"v2","reviews":[{"reviewer":"Reviewer1","text":"` + review1 + `","rating":{"stars":5,"color":"black"}},{"reviewer":"Reviewer2","text":"` + review2 + `","rating":{"stars":4,"color":"black"}}]}`},
		{"v3", `{"id":2,"version":"v3","reviews":[{"reviewer":"Reviewer1","text":"` + review1 + `","rating":{"stars":5,"color":"red"}},{"reviewer":"Reviewer2","text":"` + review2 + `","rating":{"stars":4,"color":"red"}}]}`},
	} {
		t.Run(c.version, func(t *testing.T) {
			t.Parallel()
			f := newFabric(t, defaultOptions(), "reviews:"+c.version, "ratings")
			var r Reviews
			body := getJSON(t, f.svc["reviews"].url+"/reviews/2", &r)
			if body != c.want+"\n" {
				t.Errorf("reviews %s:\n got %s\nwant %s", c.version, body, c.want)
			}
			calls := f.proxy.calls("ratings")
			if c.version == "v1" && len(calls) != 0 {
				t.Errorf("reviews v1 called ratings: %v", calls)
			}
			if c.version != "v1" && (len(calls) != 1 || calls[0].path != "/ratings/2") {
				t.Errorf("reviews %s: ratings calls %v, want one GET /ratings/2", c.version, calls)
			}
		})
	}
}

func TestReviewsRatingsUnavailable(t *testing.T) {
	t.Parallel()
	want := &Rating{Error: RatingsUnavailable}
	for _, c := range []struct {
		name    string
		version string
		fault   *fault // nil: ratings not running at all
	}{
		{"v2 ratings failing", "v2", &fault{status: http.StatusInternalServerError}},
		{"v2 ratings down", "v2", nil},
		{"v3 ratings slower than the timeout", "v3", &fault{delay: 7 * time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := defaultOptions()
			opts.ratingsTimeout = 200 * time.Millisecond
			services := []string{"reviews:" + c.version}
			if c.fault != nil {
				services = append(services, "ratings")
			}
			f := newFabric(t, opts, services...)
			if c.fault != nil {
				f.proxy.setFault("ratings", *c.fault)
			}
			began := time.Now()
			var r Reviews
			body := getJSON(t, f.svc["reviews"].url+"/reviews/0", &r)
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("reviews took %v with a 200ms ratings timeout", took)
			}
			if r.Version != c.version || len(r.Reviews) != 2 {
				t.Fatalf("reviews: %s", body)
			}
			for _, rv := range r.Reviews {
				if !reflect.DeepEqual(rv.Rating, want) {
					t.Errorf("%s: rating %+v, want %+v", rv.Reviewer, rv.Rating, want)
				}
			}
			if !strings.Contains(body, `"rating":{"error":"Ratings service is currently unavailable"}`) {
				t.Errorf("reviews JSON: %s", body)
			}
			if n := len(f.proxy.calls("ratings")); n != 1 {
				t.Errorf("ratings called %d times, want 1", n)
			}
		})
	}
}

func TestBadIDs(t *testing.T) {
	t.Parallel()
	f := newFabric(t, defaultOptions(), "productpage", "details", "reviews:v2", "ratings")
	for _, c := range []struct{ service, path string }{
		{"details", "/details/abc"}, {"details", "/details/1.5"}, {"details", "/details/99999999999999999999"},
		{"ratings", "/ratings/x"}, {"reviews", "/reviews/0x1"}, {"productpage", "/api/v1/products/one"},
	} {
		resp, body := get(t, f.svc[c.service].url+c.path)
		var e struct{ Error string }
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "not an integer") {
			t.Errorf("%s %s: %d %s %q, want 400 with a JSON error", c.service, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if calls := f.proxy.calls("details"); len(calls) != 0 {
		t.Errorf("a bad product id reached details: %v", calls)
	}
	// Negative ids are integers.
	var d Details
	getJSON(t, f.svc["details"].url+"/details/-1", &d)
	if d.ID != -1 {
		t.Errorf("details -1: %+v", d)
	}
}

func TestProductAllUp(t *testing.T) {
	t.Parallel()
	f := newFabric(t, defaultOptions(), "productpage", "details", "reviews:v2", "ratings")
	var p Product
	body := getJSON(t, f.svc["productpage"].url+"/api/v1/products/4", &p)
	want := Product{
		ID: 4,
		Details: &Details{ID: 4, Author: "William Shakespeare", Year: 1595, Type: "paperback", Pages: 200,
			Publisher: "PublisherA", Language: "English", ISBN10: "1234567890", ISBN13: "123-1234567890"},
		Reviews: &Reviews{ID: 4, Version: "v2", Reviews: []Review{
			{Reviewer: "Reviewer1", Text: review1, Rating: &Rating{Stars: 5, Color: "black"}},
			{Reviewer: "Reviewer2", Text: review2, Rating: &Rating{Stars: 4, Color: "black"}},
		}},
		Errors: []string{},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("product:\n got %s", body)
	}
	// a8 demo counts versions by the first "version":"…" of this answer; errors is a list, not null.
	for _, s := range []string{`"version":"v2"`, `"errors":[]`, `{"id":4,"details":{"id":4,`} {
		if !strings.Contains(body, s) {
			t.Errorf("product JSON lacks %s: %s", s, body)
		}
	}
	for _, svc := range []string{"details", "reviews", "ratings"} {
		if calls := f.proxy.calls(svc); len(calls) != 1 || calls[0].path != "/"+svc+"/4" {
			t.Errorf("%s calls: %v, want one to /%s/4", svc, calls, svc)
		}
	}
}

func TestProductDetailsDown(t *testing.T) {
	t.Parallel()
	f := newFabric(t, defaultOptions(), "productpage", "reviews:v1") // no details
	var p Product
	body := getJSON(t, f.svc["productpage"].url+"/api/v1/products/0", &p)
	if p.Details != nil || p.Reviews == nil || p.Reviews.Version != "v1" || !reflect.DeepEqual(p.Errors, []string{DetailsUnavailable}) {
		t.Errorf("product with details down: %s", body)
	}
	if !strings.Contains(body, `"details":null`) || !strings.Contains(body, `"errors":["Sorry, product details are currently unavailable for this book."]`) {
		t.Errorf("product JSON: %s", body)
	}
	if n := len(f.proxy.calls("details")); n != 1 {
		t.Errorf("details attempts: %d, want 1", n)
	}
}

func TestProductReviewsDelayed(t *testing.T) {
	t.Parallel()
	opts := defaultOptions()
	opts.reviewsTimeout = 300 * time.Millisecond // Amalgam8's 3 s, scaled down
	f := newFabric(t, opts, "productpage", "details", "reviews:v2", "ratings")
	f.proxy.setFault("reviews", fault{delay: 7 * time.Second})
	began := time.Now()
	var p Product
	body := getJSON(t, f.svc["productpage"].url+"/api/v1/products/0", &p)
	took := time.Since(began)
	if took < 2*opts.reviewsTimeout || took > 2*time.Second {
		t.Errorf("answered after %v, want about 2 × %v", took, opts.reviewsTimeout)
	}
	if p.Reviews != nil || p.Details == nil || !reflect.DeepEqual(p.Errors, []string{ReviewsUnavailable}) {
		t.Errorf("product with reviews delayed: %s", body)
	}
	waitFor(t, "the second attempt to reach the proxy", func() bool { return len(f.proxy.calls("reviews")) >= 2 })
	if n := len(f.proxy.calls("reviews")); n != 2 {
		t.Errorf("reviews attempts: %d, want 2", n)
	}
	// The log line says why.
	waitFor(t, "the request's log line", func() bool {
		return strings.Contains(f.svc["productpage"].stderr.String(), "GET /api/v1/products/0 200")
	})
	if log := f.svc["productpage"].stderr.String(); !strings.Contains(log, "reviews attempt 1/2") || !strings.Contains(log, "reviews attempt 2/2") {
		t.Errorf("log: %s", log)
	}
}

func TestProductReviewsRetried(t *testing.T) {
	t.Parallel()
	f := newFabric(t, defaultOptions(), "productpage", "details", "reviews:v3", "ratings")
	f.proxy.setFault("reviews", fault{failFirst: 1})
	var p Product
	body := getJSON(t, f.svc["productpage"].url+"/api/v1/products/0", &p)
	if p.Reviews == nil || p.Reviews.Version != "v3" || len(p.Errors) != 0 {
		t.Errorf("product after one failed reviews attempt: %s", body)
	}
	if n := len(f.proxy.calls("reviews")); n != 2 {
		t.Errorf("reviews attempts: %d, want 2", n)
	}
}

func TestProductSidecarDown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	pp := start(t, defaultOptions(), "--service", "productpage", "--proxy", dead)
	var p Product
	body := getJSON(t, pp.url+"/api/v1/products/0", &p)
	if p.Details != nil || p.Reviews != nil || !reflect.DeepEqual(p.Errors, []string{DetailsUnavailable, ReviewsUnavailable}) {
		t.Errorf("product without a sidecar: %s", body)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	f := newFabric(t, defaultOptions(), "productpage", "details", "reviews:v2", "ratings")
	pp := f.svc["productpage"].url
	const cookie = "foo=bar;user=jason;x"

	t.Run("given", func(t *testing.T) {
		var p Product
		getJSON(t, pp+"/api/v1/products/11", &p, "Cookie", cookie, "X-Request-ID", "req-given-1")
		for _, svc := range []string{"details", "reviews", "ratings"} {
			var found bool
			for _, c := range f.proxy.calls(svc) {
				if c.requestID == "req-given-1" {
					found = true
					if c.cookie != cookie {
						t.Errorf("%s saw Cookie %q, want %q", svc, c.cookie, cookie)
					}
				}
			}
			if !found {
				t.Errorf("%s never saw X-Request-ID req-given-1: %v", svc, f.proxy.calls(svc))
			}
		}
		waitFor(t, "the log line", func() bool {
			return regexp.MustCompile(`productpage v1: GET /api/v1/products/11 200 \S+ request_id=req-given-1`).MatchString(f.svc["productpage"].stderr.String())
		})
		waitFor(t, "reviews' log line", func() bool {
			return regexp.MustCompile(`reviews v2: GET /reviews/11 200 \S+ request_id=req-given-1`).MatchString(f.svc["reviews"].stderr.String())
		})
	})

	t.Run("generated", func(t *testing.T) {
		ids := map[string]bool{}
		for _, product := range []int{21, 22} {
			resp, _ := get(t, fmt.Sprintf("%s/api/v1/products/%d", pp, product), "Cookie", "user=shriram")
			id := resp.Header.Get("X-Request-ID")
			if !uuidRE.MatchString(id) {
				t.Fatalf("generated X-Request-ID %q is not a UUID", id)
			}
			ids[id] = true
			for _, svc := range []string{"details", "reviews", "ratings"} {
				var seen []string
				for _, c := range f.proxy.calls(svc) {
					if c.path == fmt.Sprintf("/%s/%d", svc, product) {
						seen = append(seen, c.requestID)
						if c.cookie != "user=shriram" {
							t.Errorf("%s saw Cookie %q", svc, c.cookie)
						}
					}
				}
				if !reflect.DeepEqual(seen, []string{id}) {
					t.Errorf("product %d: %s saw X-Request-IDs %q, want [%s]", product, svc, seen, id)
				}
			}
		}
		if len(ids) != 2 {
			t.Errorf("two requests got the same X-Request-ID: %v", ids)
		}
	})

	t.Run("html page", func(t *testing.T) {
		resp, _ := get(t, pp+"/productpage", "Cookie", cookie, "X-Request-ID", "req-page")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		for _, svc := range []string{"details", "reviews"} {
			var ok bool
			for _, c := range f.proxy.calls(svc) {
				ok = ok || (c.requestID == "req-page" && c.cookie == cookie && c.path == "/"+svc+"/0")
			}
			if !ok {
				t.Errorf("%s: no call for product 0 with the page's headers: %v", svc, f.proxy.calls(svc))
			}
		}
	})
}

func TestProductPageHTML(t *testing.T) {
	t.Parallel()
	page := func(t *testing.T, url string, headers ...string) string {
		t.Helper()
		resp, body := get(t, url+"/productpage", headers...)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("/productpage: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return body
	}
	check := func(t *testing.T, body string, want, notWant []string) {
		t.Helper()
		for _, s := range want {
			if !strings.Contains(body, s) {
				t.Errorf("page lacks %q", s)
			}
		}
		for _, s := range notWant {
			if strings.Contains(body, s) {
				t.Errorf("page has %q", s)
			}
		}
		if t.Failed() {
			t.Logf("page:\n%s", body)
		}
	}

	t.Run("v3 signed in", func(t *testing.T) {
		t.Parallel()
		f := newFabric(t, defaultOptions(), "productpage", "details", "reviews:v3", "ratings")
		body := page(t, f.svc["productpage"].url, "Cookie", "user=jason")
		check(t, body, []string{
			"The Comedy of Errors", "William Shakespeare", "1595", "123-1234567890",
			review1, review2, "Reviewer1", "Reviewer2",
			`<span style="color: red">★★★★★</span>`, `<span style="color: red">★★★★</span>☆`,
			"Reviews served by reviews v3", "signed in as <b>jason</b>", `href="logout"`,
		}, []string{`action="login"`, "Sorry"})
		if calls := f.proxy.calls("details"); len(calls) != 1 || calls[0].path != "/details/0" {
			t.Errorf("details calls: %v", calls)
		}
	})

	t.Run("v1 anonymous", func(t *testing.T) {
		t.Parallel()
		f := newFabric(t, defaultOptions(), "productpage", "details", "reviews:v1")
		body := page(t, f.svc["productpage"].url)
		check(t, body, []string{review1, `<form method="post" action="login">`, `name="username"`, "Reviews served by reviews v1"},
			[]string{"signed in as", "★", "Sorry"})
	})

	t.Run("v2 black stars", func(t *testing.T) {
		t.Parallel()
		f := newFabric(t, defaultOptions(), "productpage", "details", "reviews:v2", "ratings")
		check(t, page(t, f.svc["productpage"].url), []string{`<span style="color: black">★★★★★</span>`, "Reviews served by reviews v2"}, nil)
	})

	t.Run("details and ratings down", func(t *testing.T) {
		t.Parallel()
		f := newFabric(t, defaultOptions(), "productpage", "reviews:v2")
		check(t, page(t, f.svc["productpage"].url), []string{DetailsUnavailable, RatingsUnavailable, review1, "Reviews served by reviews v2"},
			[]string{"★", "1595", ReviewsUnavailable})
	})

	t.Run("reviews down", func(t *testing.T) {
		t.Parallel()
		f := newFabric(t, defaultOptions(), "productpage", "details")
		check(t, page(t, f.svc["productpage"].url), []string{ReviewsUnavailable, "William Shakespeare"},
			[]string{DetailsUnavailable, review1, "Reviews served by"})
		if n := len(f.proxy.calls("reviews")); n != 2 {
			t.Errorf("reviews attempts: %d, want 2", n)
		}
	})

	t.Run("user is escaped", func(t *testing.T) {
		t.Parallel()
		f := newFabric(t, defaultOptions(), "productpage")
		check(t, page(t, f.svc["productpage"].url, "Cookie", "user=<b>x</b>"), nil, []string{"<b>x</b>"})
	})
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	f := newFabric(t, defaultOptions(), "productpage", "details", "reviews:v1")
	pp := f.svc["productpage"].url
	base, _ := url.Parse(pp + "/login")

	resp, err := testClient.PostForm(pp+"/login", url.Values{"username": {"jason"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("POST /login: %d, want 302", resp.StatusCode)
	}
	if loc, err := base.Parse(resp.Header.Get("Location")); err != nil || loc.Path != "/productpage" {
		t.Errorf("POST /login: Location %q resolves to %v, want /productpage", resp.Header.Get("Location"), loc)
	}
	// Behind a gateway (/productpage/login) the same Location leads to /productpage/productpage.
	gw, _ := url.Parse("http://gateway/productpage/login")
	if loc, _ := gw.Parse(resp.Header.Get("Location")); loc.Path != "/productpage/productpage" {
		t.Errorf("through a gateway the Location resolves to %s", loc.Path)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != "user" || cookies[0].Value != "jason" || cookies[0].Path != "/" {
		t.Errorf("POST /login: cookies %v, want user=jason; Path=/", resp.Header.Values("Set-Cookie"))
	}

	resp, _ = get(t, pp+"/logout")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /logout: %d, want 302", resp.StatusCode)
	}
	if loc, err := base.Parse(resp.Header.Get("Location")); err != nil || loc.Path != "/productpage" {
		t.Errorf("GET /logout: Location %q", resp.Header.Get("Location"))
	}
	cookies = resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != "user" || cookies[0].Value != "" || cookies[0].MaxAge >= 0 || cookies[0].Path != "/" {
		t.Errorf("GET /logout: cookies %v, want user cleared", resp.Header.Values("Set-Cookie"))
	}

	for _, name := range []string{"", "   ", "a b", "x;user=admin", strings.Repeat("a", 65)} {
		resp, err := testClient.PostForm(pp+"/login", url.Values{"username": {name}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 0 {
			t.Errorf("login as %q: %d %v, want 400 and no cookie", name, resp.StatusCode, resp.Cookies())
		}
	}
	if resp, _ := get(t, pp+"/login"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /login: %d, want 405", resp.StatusCode)
	}

	// A browser: sign in, see the page as jason (and the calls carry the cookie), sign out.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	req, _ := http.NewRequest(http.MethodPost, pp+"/login", strings.NewReader("username=jason"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Request-ID", "browser-login")
	resp, body := do(t, browser, req)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/productpage" || !strings.Contains(body, "signed in as <b>jason</b>") {
		t.Errorf("after signing in: %d at %s:\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	var sawCookie bool
	for _, c := range f.proxy.calls("reviews") {
		sawCookie = sawCookie || c.cookie == "user=jason"
	}
	if !sawCookie {
		t.Errorf("reviews never saw user=jason: %v", f.proxy.calls("reviews"))
	}
	req, _ = http.NewRequest(http.MethodGet, pp+"/logout", nil)
	resp, body = do(t, browser, req)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "signed in as") || !strings.Contains(body, `action="login"`) {
		t.Errorf("after signing out: %d:\n%s", resp.StatusCode, body)
	}
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	in := start(t, defaultOptions(), "--service", "details", "--version", "v2")
	get(t, in.url+"/details/abc", "X-Request-ID", "log-1")
	get(t, in.url+"/health")
	get(t, in.url+"/nope")
	for _, re := range []string{
		`(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} details v2: GET /details/abc 400 \S+s request_id=log-1$`,
		`(?m)details v2: GET /health 200 \S+ request_id=-$`,
		`(?m)details v2: GET /nope 404 \S+ request_id=-$`,
	} {
		waitFor(t, "log line "+re, func() bool { return regexp.MustCompile(re).MatchString(in.stderr.String()) })
	}
	out := in.stdout.String()
	if !regexp.MustCompile(`^bookinfo details v2 listening on 127\.0\.0\.1:\d+, calling other services through http://127\.0\.0\.1:6379\n$`).MatchString(out) {
		t.Errorf("stdout: %q, want one start line", out)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--service", "ratings", "--port", "0", "--proxy", "http://127.0.0.1:1"}, stdout, stderr)
	}()
	listening := regexp.MustCompile(`listening on \S*:(\d+),`)
	waitFor(t, "the start line", func() bool { return listening.MatchString(stdout.String()) })
	addr := "127.0.0.1:" + listening.FindStringSubmatch(stdout.String())[1]
	if resp, body := get(t, "http://"+addr+"/health"); resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("/health: %d %q", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("still listening after Run returned")
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	t.Run("requests in flight finish", func(t *testing.T) {
		t.Parallel()
		opts := defaultOptions()
		opts.reviewsTimeout = 300 * time.Millisecond
		f := newFabric(t, opts, "productpage", "details")
		f.proxy.setFault("reviews", fault{delay: 7 * time.Second})
		pp := f.svc["productpage"]
		type result struct {
			p   Product
			err error
		}
		res := make(chan result, 1)
		go func() {
			var r result
			resp, err := http.Get(pp.url + "/api/v1/products/0")
			if err == nil {
				r.err = json.NewDecoder(resp.Body).Decode(&r.p)
				resp.Body.Close()
			} else {
				r.err = err
			}
			res <- r
		}()
		waitFor(t, "productpage to call reviews", func() bool { return len(f.proxy.calls("reviews")) > 0 })
		pp.cancel()
		select {
		case err := <-pp.done:
			pp.done <- err // for the cleanup
			if err != nil {
				t.Fatalf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return")
		}
		r := <-res // Run returned, so the request was answered
		if r.err != nil || !reflect.DeepEqual(r.p.Errors, []string{ReviewsUnavailable}) {
			t.Errorf("request in flight at shutdown: %+v", r)
		}
		if n := len(f.proxy.calls("reviews")); n != 2 {
			t.Errorf("reviews attempts: %d, want 2 (the request finished normally)", n)
		}
	})

	t.Run("grace runs out", func(t *testing.T) {
		t.Parallel()
		opts := defaultOptions()
		opts.shutdownGrace = 100 * time.Millisecond
		f := newFabric(t, opts, "productpage", "details")
		f.proxy.setFault("reviews", fault{delay: 7 * time.Second})
		pp := f.svc["productpage"]
		res := make(chan error, 1)
		go func() {
			resp, err := http.Get(pp.url + "/api/v1/products/0")
			if err == nil {
				resp.Body.Close()
			}
			res <- err
		}()
		waitFor(t, "productpage to call reviews", func() bool { return len(f.proxy.calls("reviews")) > 0 })
		began := time.Now()
		pp.cancel()
		select {
		case err := <-pp.done:
			pp.done <- err
			if err != nil {
				t.Fatalf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return")
		}
		if took := time.Since(began); took > 2*time.Second {
			t.Errorf("run returned %v after cancel with a 100ms grace", took)
		}
		<-res // answered or cut off, but over
		if n := len(f.proxy.calls("reviews")); n != 1 {
			t.Errorf("reviews attempts: %d, want 1 (no retry once cancelled)", n)
		}
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, c := range []struct {
		args    string
		env     func(string) string
		want    config
		wantErr string
	}{
		{args: "--service details", env: env(), want: config{"details", "v1", 9080, "http://127.0.0.1:6379"}},
		{args: "--service reviews --version v3 --port 1234 --proxy http://localhost:7000/", env: env(),
			want: config{"reviews", "v3", 1234, "http://localhost:7000"}},
		{args: "-service=ratings", env: env("PORT", "5000", "A8_PROXY_URL", "http://10.0.0.1:6379"),
			want: config{"ratings", "v1", 5000, "http://10.0.0.1:6379"}},
		{args: "--service productpage --port 81 --proxy https://p:1", env: env("PORT", "5000", "A8_PROXY_URL", "http://10.0.0.1:6379"),
			want: config{"productpage", "v1", 81, "https://p:1"}},
		{args: "--service details --version v7", env: env(), want: config{"details", "v7", 9080, "http://127.0.0.1:6379"}},
		{args: "", env: env(), wantErr: "--service is required"},
		{args: "--service shop", env: env(), wantErr: `--service "shop"`},
		{args: "--service reviews --version v4", env: env(), wantErr: "reviews is v1, v2 or v3"},
		{args: "--service details --version", env: env(), wantErr: "flag needs an argument"},
		{args: "--service details --port 70000", env: env(), wantErr: "--port 70000"},
		{args: "--service details --port x", env: env(), wantErr: "invalid value"},
		{args: "--service details", env: env("PORT", "x"), wantErr: "env PORT"},
		{args: "--service details --proxy 127.0.0.1:6379", env: env(), wantErr: "--proxy"},
		{args: "--service details --proxy ftp://x", env: env(), wantErr: "--proxy"},
		{args: "--service details extra", env: env(), wantErr: "unexpected arguments"},
		{args: "--nope", env: env(), wantErr: "flag provided but not defined"},
	} {
		got, err := parseConfig(strings.Fields(c.args), &syncBuffer{}, c.env)
		switch {
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%q: error %v, want %q", c.args, err, c.wantErr)
		case c.wantErr == "" && (err != nil || got != c.want):
			t.Errorf("%q: %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
	// Run reports a bad configuration without listening.
	if err := Run(context.Background(), []string{"--service", "reviews", "--version", "v9"}, &syncBuffer{}, &syncBuffer{}); err == nil {
		t.Error("Run with reviews v9: no error")
	}
}
