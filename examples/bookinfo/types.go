package bookinfo

// The sentences productpage shows (and lists in Product.Errors) when a call fails, and the one reviews
// puts in a Rating when ratings does not answer. They are Amalgam8's bookinfo's.
const (
	DetailsUnavailable = "Sorry, product details are currently unavailable for this book."
	ReviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	RatingsUnavailable = "Ratings service is currently unavailable"
)

// Details is what details answers to GET /details/{id}: the book's bibliographic details.
type Details struct {
	ID        int    `json:"id"`
	Author    string `json:"author"`
	Year      int    `json:"year"`
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
}

// Ratings is what ratings answers to GET /ratings/{id}: stars (1 to 5) by reviewer.
type Ratings struct {
	ID      int            `json:"id"`
	Ratings map[string]int `json:"ratings"`
}

// Reviews is what reviews answers to GET /reviews/{id}: the book's reviews and the version of reviews
// that wrote them (v1, v2 or v3).
type Reviews struct {
	ID      int      `json:"id"`
	Version string   `json:"version"`
	Reviews []Review `json:"reviews"`
}

// Review is one review. Rating is absent in reviews v1; v2 and v3 set it from ratings.
type Review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *Rating `json:"rating,omitempty"`
}

// Rating is a reviewer's rating as reviews v2 (black stars) and v3 (red stars) show it: either Stars and
// Color, or Error (RatingsUnavailable) when ratings could not be asked.
type Rating struct {
	Stars int    `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

// Product is what productpage answers to GET /api/v1/products/{id}: the book's details and reviews, each
// null when its service failed, with the failures' sentences in Errors (an empty list when none).
type Product struct {
	ID      int      `json:"id"`
	Details *Details `json:"details"`
	Reviews *Reviews `json:"reviews"`
	Errors  []string `json:"errors"`
}
