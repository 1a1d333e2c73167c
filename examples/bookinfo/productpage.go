package bookinfo

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// userCookie names the signed-in user; the bookinfo rules route on it (user=jason gets reviews v2).
const userCookie = "user"

// fetchProduct asks details and reviews (at once, through the sidecar) about book id, forwarding r's
// Cookie and X-Request-ID.
func (a *app) fetchProduct(r *http.Request, id int) Product {
	ctx, h, path := r.Context(), forwardHeaders(r), "/"+strconv.Itoa(id)
	var (
		wg         sync.WaitGroup
		d          Details
		rv         Reviews
		derr, rerr error
	)
	wg.Go(func() { derr = a.get(ctx, "details", "/details"+path, h, a.opts.detailsTimeout, 1, &d) })
	wg.Go(func() {
		rerr = a.get(ctx, "reviews", "/reviews"+path, h, a.opts.reviewsTimeout, a.opts.reviewsAttempts, &rv)
	})
	wg.Wait()
	p := Product{ID: id, Errors: []string{}}
	if derr == nil {
		p.Details = &d
	} else {
		p.Errors = append(p.Errors, DetailsUnavailable)
	}
	if rerr == nil {
		p.Reviews = &rv
	} else {
		p.Errors = append(p.Errors, ReviewsUnavailable)
	}
	return p
}

// productAPI answers GET /api/v1/products/{id} with the Product as JSON (200 even when calls failed).
func (a *app) productAPI(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, a.fetchProduct(r, id))
}

// pageView is what the page template shows.
type pageView struct {
	Service, Version string // this productpage
	User             string
	Product          Product
	DetailsError     string
	ReviewsError     string
	Reviews          []reviewView
}

type reviewView struct {
	Reviewer, Text string
	Stars, Empty   string // ★ and ☆
	Color          string
	RatingError    string
}

// productPage answers GET /productpage: book 0 as HTML.
func (a *app) productPage(w http.ResponseWriter, r *http.Request) {
	p := a.fetchProduct(r, 0)
	v := pageView{Service: a.cfg.service, Version: a.cfg.version, Product: p}
	if c, err := r.Cookie(userCookie); err == nil {
		v.User = c.Value
	}
	if p.Details == nil {
		v.DetailsError = DetailsUnavailable
	}
	if p.Reviews == nil {
		v.ReviewsError = ReviewsUnavailable
	} else {
		for _, rv := range p.Reviews.Reviews {
			view := reviewView{Reviewer: rv.Reviewer, Text: rv.Text}
			if rt := rv.Rating; rt != nil {
				if rt.Error != "" {
					view.RatingError = rt.Error
				} else {
					n := min(max(rt.Stars, 0), 5)
					view.Stars, view.Empty, view.Color = strings.Repeat("★", n), strings.Repeat("☆", 5-n), rt.Color
				}
			}
			v.Reviews = append(v.Reviews, view)
		}
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// validUser reports whether name may be a user cookie's value: 1 to 64 letters, digits and ._@-.
func validUser(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("._@-", c)) {
			return false
		}
	}
	return true
}

// backToPage redirects to the product page. The Location is relative ("productpage"), so that it
// resolves to /productpage when productpage is called directly and to /productpage/productpage through
// a gateway sidecar, which reaches productpage under /productpage/.
func backToPage(w http.ResponseWriter) {
	w.Header().Set("Location", "productpage")
	w.WriteHeader(http.StatusFound)
}

// login answers POST /login (form field username): sets the user cookie and goes back to the page.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("username"))
	if !validUser(name) {
		http.Error(w, "username: 1 to 64 letters, digits and . _ @ -", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: userCookie, Value: name, Path: "/", SameSite: http.SameSiteLaxMode})
	backToPage(w)
}

// logout answers GET /logout: clears the user cookie and goes back to the page.
func (a *app) logout(w http.ResponseWriter, _ *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: userCookie, Value: "", Path: "/", MaxAge: -1, SameSite: http.SameSiteLaxMode})
	backToPage(w)
}

// pageTemplate is the product page. Its links are relative, so that it works behind a gateway too.
var pageTemplate = template.Must(template.New("productpage").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Simple Bookstore App</title>
<style>
body { font-family: sans-serif; margin: 0 auto; max-width: 48em; padding: 1em; }
header { display: flex; justify-content: space-between; align-items: center; border-bottom: 1px solid #ccc; }
blockquote { border-left: 4px solid #ccc; margin: 1em 0; padding: 0 1em; }
.error { color: #a00; }
.stars { font-size: 1.3em; }
table td { padding: 0 1em 0 0; }
footer { color: #777; font-size: 0.8em; border-top: 1px solid #ccc; margin-top: 2em; }
</style>
</head>
<body>
<header>
<h1>BookInfo Sample</h1>
<div>
{{- if .User}}
<p>signed in as <b>{{.User}}</b> &middot; <a href="logout">sign out</a></p>
{{- else}}
<form method="post" action="login">
<label>User name <input type="text" name="username" placeholder="jason"></label>
<button type="submit">Sign in</button>
</form>
{{- end}}
</div>
</header>

<h2>The Comedy of Errors</h2>
<p>Summary: The Comedy of Errors is one of William Shakespeare's early plays. It is his shortest and
one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken
identity, in addition to puns and word play.</p>

<section id="details">
<h3>Book Details</h3>
{{- with .Product.Details}}
<table>
<tr><td>Author</td><td>{{.Author}}</td></tr>
<tr><td>Year</td><td>{{.Year}}</td></tr>
<tr><td>Type</td><td>{{.Type}}</td></tr>
<tr><td>Pages</td><td>{{.Pages}}</td></tr>
<tr><td>Publisher</td><td>{{.Publisher}}</td></tr>
<tr><td>Language</td><td>{{.Language}}</td></tr>
<tr><td>ISBN-10</td><td>{{.ISBN10}}</td></tr>
<tr><td>ISBN-13</td><td>{{.ISBN13}}</td></tr>
</table>
{{- else}}
<p class="error">{{.DetailsError}}</p>
{{- end}}
</section>

<section id="reviews">
<h3>Book Reviews</h3>
{{- if .ReviewsError}}
<p class="error">{{.ReviewsError}}</p>
{{- else}}
{{- range .Reviews}}
<blockquote>
<p>{{.Text}}</p>
<small>{{.Reviewer}}</small>
{{- if .RatingError}}
<p class="error">{{.RatingError}}</p>
{{- else if .Stars}}
<p class="stars"><span style="color: {{.Color}}">{{.Stars}}</span>{{.Empty}}</p>
{{- end}}
</blockquote>
{{- end}}
<p><small>Reviews served by reviews {{.Product.Reviews.Version}}</small></p>
{{- end}}
</section>

<footer><p>{{.Service}} {{.Version}}</p></footer>
</body>
</html>
`))
