package bookinfo

import (
	"context"
	"net/http"
	"strconv"
)

// details answers GET /details/{id}: every book is the same play.
func (a *app) details(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, Details{
		ID:        id,
		Author:    "William Shakespeare",
		Year:      1595,
		Type:      "paperback",
		Pages:     200,
		Publisher: "PublisherA",
		Language:  "English",
		ISBN10:    "1234567890",
		ISBN13:    "123-1234567890",
	})
}

// ratings answers GET /ratings/{id}.
func (a *app) ratings(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, Ratings{ID: id, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}})
}

// reviewTexts are the two reviews every book has.
var reviewTexts = []struct{ reviewer, text string }{
	{"Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
	{"Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
}

// starColor is the color of each version's stars; v1 shows none.
var starColor = map[string]string{"v2": "black", "v3": "red"}

// reviews answers GET /reviews/{id}; v2 and v3 ask ratings (through the sidecar) for the stars.
func (a *app) reviews(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(w, r)
	if !ok {
		return
	}
	out := Reviews{ID: id, Version: a.cfg.version, Reviews: make([]Review, 0, len(reviewTexts))}
	for _, t := range reviewTexts {
		out.Reviews = append(out.Reviews, Review{Reviewer: t.reviewer, Text: t.text})
	}
	if color, ok := starColor[a.cfg.version]; ok {
		var rt Ratings
		// Like Amalgam8's reviews, it finishes its ratings call (within ratingsTimeout) even if its
		// own caller has given up: a resilience recipe then sees that call answer 200, late, while
		// productpage's call to reviews ends as "unexpected connection termination".
		err := a.get(context.WithoutCancel(r.Context()), "ratings", "/ratings/"+strconv.Itoa(id), forwardHeaders(r), a.opts.ratingsTimeout, 1, &rt)
		for i := range out.Reviews {
			switch stars, rated := rt.Ratings[out.Reviews[i].Reviewer]; {
			case err != nil:
				out.Reviews[i].Rating = &Rating{Error: RatingsUnavailable}
			case rated:
				out.Reviews[i].Rating = &Rating{Stars: stars, Color: color}
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}
