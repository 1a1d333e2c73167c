package registry

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/httpapi"
	"github.com/a8fabric/a8/internal/store"
)

// Instance fields as the API spells them, in output order, and the projection bit of each.
const (
	fID uint8 = 1 << iota
	fServiceName
	fEndpoint
	fTTL
	fStatus
	fMetadata
	fLastHeartbeat
	fTags
	fAll = fID | fServiceName | fEndpoint | fTTL | fStatus | fMetadata | fLastHeartbeat | fTags
)

var fieldBits = map[string]uint8{
	"id": fID, "service_name": fServiceName, "endpoint": fEndpoint, "ttl": fTTL,
	"status": fStatus, "metadata": fMetadata, "last_heartbeat": fLastHeartbeat, "tags": fTags,
}

// listQuery is a parsed GET /api/v1/instances query.
type listQuery struct {
	ids      []string // any of; nil: no filter
	services []string // any of
	statuses []string // any of; nil: the routable default; allStatus: every status
	all      bool
	tags     []string // all of
	fields   uint8    // projection bits
	changes  bool     // answered from the change log (changes.go)
	epoch    string   // the change log's epoch the index belongs to
	httpapi.Watch
}

const allowedKeys = "id, service_name, status, tags, fields, index, wait, changes, epoch"

func (c *Config) parseListQuery(q url.Values) (*listQuery, error) {
	lq := &listQuery{fields: fAll}
	for key, vals := range q {
		switch key {
		case "id":
			lq.ids = vals
		case "service_name":
			lq.services = vals
		case "status":
			for _, v := range vals {
				switch up := strings.ToUpper(v); up {
				case api.StatusAll:
					lq.all = true
				case api.StatusUp, api.StatusStarting, api.StatusOutOfService:
					lq.statuses = append(lq.statuses, up)
				default: // a status of another registry (Eureka's DOWN, say) is matched as given
					lq.statuses = append(lq.statuses, v)
				}
			}
		case "tags":
			for _, v := range vals {
				for _, t := range strings.Split(v, ",") {
					if t = strings.TrimSpace(t); t != "" {
						lq.tags = append(lq.tags, t)
					}
				}
			}
		case "fields":
			lq.fields = fID | fEndpoint // always returned, as Amalgam8 does
			for _, v := range vals {
				for _, f := range strings.Split(v, ",") {
					if f = strings.TrimSpace(f); f == "" {
						continue
					}
					bit, ok := fieldBits[f]
					if !ok {
						return nil, fmt.Errorf("fields: unknown field %q; instance fields are id, service_name, endpoint, ttl, status, metadata, last_heartbeat, tags", f)
					}
					lq.fields |= bit
				}
			}
		case "changes":
			switch v := strings.ToLower(vals[len(vals)-1]); v {
			case "true", "1", "":
				lq.changes = true
			case "false", "0":
			default:
				return nil, fmt.Errorf("changes: want true or false, got %q", v)
			}
		case "epoch":
			lq.epoch = vals[len(vals)-1]
		case "index", "wait":
			// parsed by parseWatch
		case "ttl", "endpoint", "metadata", "last_heartbeat":
			return nil, fmt.Errorf("cannot filter by %q: only id, service_name, status and tags are filters", key)
		default:
			return nil, fmt.Errorf("unknown query parameter %q: known parameters are %s", key, allowedKeys)
		}
	}
	w, err := httpapi.ParseWatch(q, c.DefaultWait, c.MaxWait)
	if err != nil {
		return nil, err
	}
	lq.Watch = w
	return lq, nil
}

// match reports whether in passes the query's filters.
func (lq *listQuery) match(in *store.Instance) bool {
	if lq.ids != nil && !slices.Contains(lq.ids, in.ID) {
		return false
	}
	if lq.services != nil && !slices.Contains(lq.services, in.ServiceName) {
		return false
	}
	switch {
	case lq.all:
	case lq.statuses != nil:
		if !slices.Contains(lq.statuses, in.Status) {
			return false
		}
	default:
		if !routable(in.Status) {
			return false
		}
	}
	for _, t := range lq.tags {
		if !slices.Contains(in.Tags, t) {
			return false
		}
	}
	return true
}

// Eureka's statuses (instances from a Eureka client or a remote Eureka catalog) that mean "do not
// route here", as Eureka clients read them.
const (
	statusDown    = "DOWN"
	statusUnknown = "UNKNOWN"
)

// routable is the status filter of a query that names none: everything but instances that are
// starting, out of service, or down or unknown to Eureka.
func routable(status string) bool {
	switch status {
	case api.StatusStarting, api.StatusOutOfService, statusDown, statusUnknown:
		return false
	}
	return true
}

// service is the one service the query is restricted to, if any, so the store can list just it.
func (lq *listQuery) service() string {
	if len(lq.services) == 1 {
		return lq.services[0]
	}
	return ""
}
