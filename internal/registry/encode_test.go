package registry

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
)

// The hand-written encoder must write exactly what encoding/json writes for api.Instance.
func TestAppendInstance_MatchesEncodingJSON(t *testing.T) {
	beat := time.Date(2026, 11, 23, 10, 4, 5, 123456789, time.UTC)
	tests := []store.Instance{
		{ID: "0123456789abcdef", ServiceName: "reviews", Endpoint: store.Endpoint{Type: "http", Value: "10.0.0.1:9080"},
			Status: "UP", Tags: []string{"version=v1", "zone=a"}, Metadata: json.RawMessage(`{"a":[1,2],"b":"x"}`), TTL: 30 * time.Second, LastHeartbeat: beat},
		{ID: "x", ServiceName: "ünïcode \"quoted\" <tag> & \\ \n\t\x01", Endpoint: store.Endpoint{Type: "user", Value: "\u2028"},
			Status: "STARTING", Tags: []string{"é", "a\"b"}, TTL: 0},
		{ID: "y", Endpoint: store.Endpoint{Type: "tcp", Value: "h:1"}, Status: "OUT_OF_SERVICE", TTL: 600 * time.Second, LastHeartbeat: beat.Add(-beat.Sub(beat.Truncate(time.Second)))},
		{ID: "z", ServiceName: "bad utf8 \xff\xfe", Endpoint: store.Endpoint{Type: "tcp", Value: "h:1"}},
	}
	for _, in := range tests {
		hb := &in.LastHeartbeat
		if in.LastHeartbeat.IsZero() {
			hb = nil
		}
		want, err := json.Marshal(api.Instance{
			ID: in.ID, ServiceName: in.ServiceName, Endpoint: &api.Endpoint{Type: in.Endpoint.Type, Value: in.Endpoint.Value},
			TTL: int64(in.TTL / time.Second), Status: in.Status, Metadata: in.Metadata, LastHeartbeat: hb, Tags: in.Tags,
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendInstance(nil, &in, fAll); string(got) != string(want) {
			t.Errorf("appendInstance:\n got %s\nwant %s", got, want)
		}
	}
}
