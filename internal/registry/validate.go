package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
)

// InstanceID is Amalgam8's instance id: the first 16 hex digits of
// sha256(service_name + "/" + endpoint type + "/" + endpoint value). Registering the same endpoint
// again therefore lands on the same instance.
func InstanceID(service, endpointType, endpointValue string) string {
	sum := sha256.Sum256([]byte(service + "/" + endpointType + "/" + endpointValue))
	return hex.EncodeToString(sum[:8])
}

// CatalogInstance validates a registration as POST /api/v1/instances does and returns the instance
// it stands for, with the same id, for catalogs that list instances as registration bodies (the
// file catalog). The lease is dropped: a catalog's instances never expire.
func CatalogInstance(req *api.InstanceRegistration) (store.Instance, error) {
	c := Config{DefaultTTL: time.Second, MinTTL: time.Second, MaxTTL: time.Second}
	in, err := c.toInstance(req)
	in.TTL = 0
	return in, err
}

// fieldError is a registration field that is wrong; it is answered with 400.
type fieldError struct{ field, reason string }

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

func badField(field, format string, args ...any) error {
	return &fieldError{field, fmt.Sprintf(format, args...)}
}

var endpointTypes = []string{api.EndpointHTTP, api.EndpointHTTPS, api.EndpointTCP, api.EndpointUDP, api.EndpointUser}

// toInstance validates a registration and turns it into the instance to store.
func (c *Config) toInstance(req *api.InstanceRegistration) (store.Instance, error) {
	var in store.Instance
	switch {
	case req.ServiceName == "":
		return in, badField("service_name", "required")
	case len(req.ServiceName) > MaxServiceNameBytes:
		return in, badField("service_name", "longer than %d bytes (%d)", MaxServiceNameBytes, len(req.ServiceName))
	case req.Endpoint == nil:
		return in, badField("endpoint", "required: {\"type\": \"http\", \"value\": \"host:port\"}")
	case req.Endpoint.Type == "":
		return in, badField("endpoint.type", "required, one of %s", strings.Join(endpointTypes, ", "))
	case !slices.Contains(endpointTypes, req.Endpoint.Type):
		return in, badField("endpoint.type", "%q is not one of %s", req.Endpoint.Type, strings.Join(endpointTypes, ", "))
	case req.Endpoint.Value == "":
		return in, badField("endpoint.value", "required, for example \"10.0.0.5:9080\"")
	case len(req.Endpoint.Value) > MaxEndpointBytes:
		return in, badField("endpoint.value", "longer than %d bytes (%d)", MaxEndpointBytes, len(req.Endpoint.Value))
	case req.TTL < 0:
		return in, badField("ttl", "must be a whole number of seconds, 0 or more (got %d)", req.TTL)
	}

	status := api.StatusUp
	if req.Status != "" {
		if len(req.Status) > MaxStatusBytes {
			return in, badField("status", "longer than %d bytes (%d)", MaxStatusBytes, len(req.Status))
		}
		status = strings.ToUpper(req.Status)
		if status != api.StatusUp && status != api.StatusStarting && status != api.StatusOutOfService {
			return in, badField("status", "%q is not one of UP, STARTING, OUT_OF_SERVICE", req.Status)
		}
	}

	var metadata json.RawMessage
	if m := bytes.TrimSpace(req.Metadata); len(m) > 0 && !bytes.Equal(m, []byte("null")) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, m); err != nil {
			return in, badField("metadata", "not valid JSON: %v", err)
		}
		if buf.Len() > MaxMetadataBytes {
			return in, badField("metadata", "longer than %d bytes of compact JSON (%d)", MaxMetadataBytes, buf.Len())
		}
		metadata = buf.Bytes()
	}

	if len(req.Tags) > MaxTags {
		return in, badField("tags", "more than %d tags (%d)", MaxTags, len(req.Tags))
	}
	for i, t := range req.Tags {
		if t == "" {
			return in, badField(fmt.Sprintf("tags[%d]", i), "must not be empty")
		}
		if len(t) > MaxTagBytes {
			return in, badField(fmt.Sprintf("tags[%d]", i), "longer than %d bytes (%d)", MaxTagBytes, len(t))
		}
	}

	return store.Instance{
		ID:          InstanceID(req.ServiceName, req.Endpoint.Type, req.Endpoint.Value),
		ServiceName: req.ServiceName,
		Endpoint:    store.Endpoint{Type: req.Endpoint.Type, Value: req.Endpoint.Value},
		Status:      status,
		Tags:        req.Tags,
		Metadata:    metadata,
		TTL:         c.clampTTL(req.TTL),
	}, nil
}
