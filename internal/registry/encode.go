package registry

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/a8fabric/a8/internal/store"
)

// The list endpoints are what every sidecar polls or watches, so instances are written straight into
// a pooled buffer: no intermediate structs, no reflection, and projection (?fields=) for free. The
// output is what encoding/json makes of api.Instance (a test holds the two equal).

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 4<<20 { // do not keep a huge buffer alive for a rare huge list
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// appendInstances writes `"<key>":[...]` with the projected instances.
func appendInstances(b []byte, key string, list []store.Instance, fields uint8) []byte {
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, `":[`...)
	for i := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendInstance(b, &list[i], fields)
	}
	return append(b, ']')
}

func appendInstance(b []byte, in *store.Instance, fields uint8) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, in.ID)
	if fields&fServiceName != 0 && in.ServiceName != "" {
		b = append(b, `,"service_name":`...)
		b = appendString(b, in.ServiceName)
	}
	if fields&fEndpoint != 0 {
		b = append(b, `,"endpoint":{"type":`...)
		b = appendString(b, in.Endpoint.Type)
		b = append(b, `,"value":`...)
		b = appendString(b, in.Endpoint.Value)
		b = append(b, '}')
	}
	if ttl := int64(in.TTL / time.Second); fields&fTTL != 0 && ttl != 0 {
		b = append(b, `,"ttl":`...)
		b = strconv.AppendInt(b, ttl, 10)
	}
	if fields&fStatus != 0 && in.Status != "" {
		b = append(b, `,"status":`...)
		b = appendString(b, in.Status)
	}
	if fields&fMetadata != 0 && len(in.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b = append(b, in.Metadata...) // stored compact and valid
	}
	if fields&fLastHeartbeat != 0 && !in.LastHeartbeat.IsZero() {
		b = append(b, `,"last_heartbeat":"`...)
		b = in.LastHeartbeat.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if fields&fTags != 0 && len(in.Tags) > 0 {
		b = append(b, `,"tags":[`...)
		for i, t := range in.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Plain ASCII, the common case, is copied as is; anything
// else goes through encoding/json so escaping is exactly the standard library's.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
