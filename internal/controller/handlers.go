package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/httpapi"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/store"
)

// ruleKind selects route rules, action rules or both.
type ruleKind struct {
	path  string // "routes" or "actions"
	name  string // "route" or "action"
	match func(*api.Rule) bool
}

var (
	kindAny    = ruleKind{match: func(*api.Rule) bool { return true }}
	kindRoute  = ruleKind{path: "routes", name: "route", match: (*api.Rule).IsRoute}
	kindAction = ruleKind{path: "actions", name: "action", match: (*api.Rule).IsAction}
)

// filter is Amalgam8's rule filter: ids in a set, destinations in a set, and every tag present.
type filter struct {
	ids, tags, destinations []string
	kind                    ruleKind
}

func (f *filter) match(r *api.Rule) bool {
	if len(f.ids) > 0 && !slices.Contains(f.ids, r.ID) {
		return false
	}
	if len(f.destinations) > 0 && !slices.Contains(f.destinations, r.Destination) {
		return false
	}
	for _, t := range f.tags {
		if !slices.Contains(r.Tags, t) {
			return false
		}
	}
	return f.kind.match(r)
}

// parseFilter reads ?id=&tag=&destination= (each repeatable) and the watch parameters; any other
// parameter is an error, so that a typo (tags= for tag=) does not silently select everything.
func (s *Server) parseFilter(q url.Values, kind ruleKind) (*filter, httpapi.Watch, error) {
	f := &filter{ids: q["id"], tags: q["tag"], destinations: q["destination"], kind: kind}
	for key := range q {
		switch key {
		case "id", "tag", "destination", "index", "wait":
		default:
			return nil, httpapi.Watch{}, fmt.Errorf("unknown query parameter %q: filter with id, tag and destination (each repeatable), watch with index and wait", key)
		}
	}
	w, err := httpapi.ParseWatch(q, s.cfg.DefaultWait, s.cfg.MaxWait)
	return f, w, err
}

// read answers a read of the rules: it blocks first if the query asks to, and sets the revision
// header. ok is false when an error was already written.
func (s *Server) read(w http.ResponseWriter, r *http.Request, wt httpapi.Watch) (set store.RuleSet, ok bool) {
	ctx := r.Context()
	ns := auth.Namespace(ctx)
	if wt.Blocking {
		wctx, cancel := context.WithTimeout(ctx, httpapi.Jitter(wt.Wait, s.cfg.MaxWait))
		stop := context.AfterFunc(s.draining, cancel)
		_, err := s.store.Wait(wctx, ns, int64(min(wt.Index, 1<<62)))
		stop()
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			s.storeError(w, r, "watch", err)
			return set, false
		}
		// Answer even when the wait ended because the server is shutting down.
		var cancelGet context.CancelFunc
		ctx, cancelGet = context.WithTimeout(context.WithoutCancel(ctx), listAfterWaitLimit)
		defer cancelGet()
	}
	set, err := s.store.Get(ctx, ns)
	if err != nil {
		s.storeError(w, r, "read rules", err)
		return set, false
	}
	setIndex(w, set.Revision)
	return set, true
}

func selectRules(set store.RuleSet, f *filter) []api.Rule {
	out := []api.Rule{}
	for i := range set.Rules {
		if f.match(&set.Rules[i]) {
			out = append(out, set.Rules[i])
		}
	}
	return out
}

// getRules is GET /v1/rules: {"rules": [...], "revision": N}. Asking for an id that does not exist
// is a 404 (Amalgam8 documented it, its memory store answered 500).
func (s *Server) getRules(w http.ResponseWriter, r *http.Request) {
	f, wt, err := s.parseFilter(r.URL.Query(), kindAny)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, ErrInvalidQuery, err.Error())
		return
	}
	set, ok := s.read(w, r, wt)
	if !ok {
		return
	}
	// A plain read of an id that does not exist is a 404; a watch of one is not (the rule may be about
	// to be created, or was just deleted, and the watcher must hear of that).
	if missing := missingIDs(set, f.ids); len(missing) > 0 && !wt.Blocking {
		writeError(w, r, http.StatusNotFound, ErrRuleNotFound, (&store.MissingRulesError{IDs: missing}).Error())
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, api.RuleList{Rules: selectRules(set, f), Revision: set.Revision})
}

func missingIDs(set store.RuleSet, ids []string) []string {
	var missing []string
	for _, id := range ids {
		if !slices.ContainsFunc(set.Rules, func(r api.Rule) bool { return r.ID == id }) && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	return missing
}

// addRules is POST /v1/rules: 201 {"ids": [...]} in the order of the rules; rules without an id get
// a generated one, and a rule with the id of an existing rule replaces it (as in Amalgam8).
func (s *Server) addRules(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.readRules(w, r, false)
	if !ok {
		return
	}
	if err := rules.Validate(rs); err != nil {
		invalid(w, err)
		return
	}
	ids := assignIDs(rs)
	rev, err := s.store.Change(r.Context(), auth.Namespace(r.Context()), store.RuleChange{Put: rs})
	if err != nil {
		s.storeError(w, r, "adding rules", err)
		return
	}
	s.changed(r, "add", rev, ids)
	httpapi.WriteJSON(w, http.StatusCreated, api.RuleIDs{IDs: ids})
}

func assignIDs(rs []api.Rule) []string {
	ids := make([]string, len(rs))
	for i := range rs {
		if rs[i].ID == "" {
			rs[i].ID = newID()
		}
		ids[i] = rs[i].ID
	}
	return ids
}

// updateRules is PUT /v1/rules: each rule, named by its id, replaces the stored one; if any id is
// unknown, nothing changes and the answer is 404.
func (s *Server) updateRules(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.readRules(w, r, false)
	if !ok {
		return
	}
	problems := problemsOf(rules.Validate(rs))
	for i := range rs {
		if rs[i].ID == "" {
			problems = append(problems, rules.Problem{Path: fmt.Sprintf("rules[%d].id", i), Reason: "required: an update names the rule it replaces"})
		}
	}
	if len(problems) > 0 {
		invalid(w, &rules.ValidationError{Problems: problems})
		return
	}
	rev, err := s.store.Change(r.Context(), auth.Namespace(r.Context()), store.RuleChange{Put: rs, MustExist: true})
	if err != nil {
		s.storeError(w, r, "updating rules", err)
		return
	}
	s.changed(r, "update", rev, assignIDs(rs))
	w.WriteHeader(http.StatusOK)
}

// deleteRules is DELETE /v1/rules: deletes the rules the filter selects, all of them without one.
// The revision rises even if nothing matched (Amalgam8's rule).
func (s *Server) deleteRules(w http.ResponseWriter, r *http.Request) {
	f, _, err := s.parseFilter(r.URL.Query(), kindAny)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, ErrInvalidQuery, err.Error())
		return
	}
	s.delete(w, r, f)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, f *filter) {
	rev, err := s.store.Change(r.Context(), auth.Namespace(r.Context()), store.RuleChange{Delete: f.match})
	if err != nil {
		s.storeError(w, r, "deleting rules", err)
		return
	}
	s.changed(r, "delete "+r.URL.RequestURI(), rev, nil)
	w.WriteHeader(http.StatusOK)
}

// byDestination is GET /v1/rules/routes and /v1/rules/actions: {"services": {dest: [rules]}}.
func (s *Server) byDestination(kind ruleKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, wt, err := s.parseFilter(r.URL.Query(), kind)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, ErrInvalidQuery, err.Error())
			return
		}
		set, ok := s.read(w, r, wt)
		if !ok {
			return
		}
		out := api.RulesByDestination{Services: map[string][]api.Rule{}}
		for _, rule := range selectRules(set, f) {
			out.Services[rule.Destination] = append(out.Services[rule.Destination], rule)
		}
		httpapi.WriteJSON(w, http.StatusOK, out)
	}
}

// getDestination is GET /v1/rules/routes/{destination} (and actions): {"rules", "revision"}.
func (s *Server) getDestination(kind ruleKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, wt, err := s.parseFilter(r.URL.Query(), kind)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, ErrInvalidQuery, err.Error())
			return
		}
		f.destinations = []string{r.PathValue("destination")}
		set, ok := s.read(w, r, wt)
		if !ok {
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, api.RuleList{Rules: selectRules(set, f), Revision: set.Revision})
	}
}

// deleteDestination is DELETE /v1/rules/routes/{destination} (and actions).
func (s *Server) deleteDestination(kind ruleKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Query()) > 0 {
			writeError(w, r, http.StatusBadRequest, ErrInvalidQuery, "this endpoint takes no query parameters")
			return
		}
		s.delete(w, r, &filter{destinations: []string{r.PathValue("destination")}, kind: kind})
	}
}

// setDestination is Amalgam8 0.x's PUT /v1/rules/routes/{destination} (and actions), which the
// Python a8ctl uses: the body's rules replace every route (or action) rule of the destination, in one
// change. A rule without a destination takes the path's; one with another destination, or of the
// other kind, is refused.
func (s *Server) setDestination(kind ruleKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dest := r.PathValue("destination")
		rs, ok := s.readRules(w, r, true)
		if !ok {
			return
		}
		var problems []rules.Problem
		for i := range rs {
			if rs[i].Destination == "" {
				rs[i].Destination = dest
			}
			path := fmt.Sprintf("rules[%d]", i)
			switch {
			case rs[i].Destination != dest:
				problems = append(problems, rules.Problem{Path: path + ".destination", Reason: fmt.Sprintf("%q is not %q, the destination in the URL", rs[i].Destination, dest), RuleID: rs[i].ID})
			case (rs[i].Route != nil || rs[i].Actions != nil) && !kind.match(&rs[i]):
				problems = append(problems, rules.Problem{Path: path, Reason: fmt.Sprintf("is not a %s rule; PUT /v1/rules/%s/%s takes %s rules", kind.name, kind.path, dest, kind.name), RuleID: rs[i].ID})
			}
		}
		problems = append(problems, problemsOf(rules.Validate(rs))...)
		if len(problems) > 0 {
			invalid(w, &rules.ValidationError{Problems: problems})
			return
		}
		ids := assignIDs(rs)
		scope := &filter{destinations: []string{dest}, kind: kind}
		// The bulk form replaces the destination's rules of one kind and nothing else: an id that
		// belongs to a rule outside that scope is refused rather than silently taken over.
		check := func(current []api.Rule) error {
			var problems []rules.Problem
			for i := range rs {
				for j := range current {
					if current[j].ID == rs[i].ID && !scope.match(&current[j]) {
						problems = append(problems, rules.Problem{Path: fmt.Sprintf("rules[%d].id", i), RuleID: rs[i].ID,
							Reason: fmt.Sprintf("%q is the id of a %s rule of %s; this request replaces the %s rules of %s only", rs[i].ID, kindName(&current[j]), current[j].Destination, kind.name, dest)})
					}
				}
			}
			if len(problems) > 0 {
				return &rules.ValidationError{Problems: problems}
			}
			return nil
		}
		rev, err := s.store.Change(r.Context(), auth.Namespace(r.Context()), store.RuleChange{Delete: scope.match, Put: rs, Check: check})
		var ve *rules.ValidationError
		if errors.As(err, &ve) {
			invalid(w, ve)
			return
		}
		if err != nil {
			s.storeError(w, r, "setting the "+kind.name+" rules of "+dest, err)
			return
		}
		s.changed(r, "set "+kind.path+" of "+dest, rev, ids)
		httpapi.WriteJSON(w, http.StatusCreated, api.RuleIDs{IDs: ids})
	}
}

func kindName(r *api.Rule) string {
	if r.IsRoute() {
		return "route"
	}
	return "action"
}

// problemsOf returns the problems of a rules.Validate error (none for nil).
func problemsOf(err error) []rules.Problem {
	var ve *rules.ValidationError
	if errors.As(err, &ve) {
		return ve.Problems
	}
	return nil
}

// changed logs an accepted change.
func (s *Server) changed(r *http.Request, what string, revision int64, ids []string) {
	s.log.Info("rules changed", "namespace", auth.Namespace(r.Context()), "change", what, "revision", revision, "ids", ids)
}

// health is GET /health: 200 when the store is reachable, 503 otherwise.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	body := map[string]any{"healthy": true, "version": s.cfg.Version}
	status := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		body["healthy"], body["error"] = false, err.Error()
		status = http.StatusServiceUnavailable
	}
	httpapi.WriteJSON(w, status, body)
}
