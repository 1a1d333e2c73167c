// Package api holds the wire types of a8's REST APIs, shared by the servers, the Go clients, the CLI
// and the SDK. Field names and JSON spellings follow Amalgam8's, so Amalgam8 clients work unchanged.
package api

import (
	"encoding/json"
	"time"
)

// Endpoint types accepted by the registry.
const (
	EndpointHTTP  = "http"
	EndpointHTTPS = "https"
	EndpointTCP   = "tcp"
	EndpointUDP   = "udp"
	EndpointUser  = "user"
)

// Instance statuses known to the registry. Statuses are stored upper-case.
const (
	StatusUp           = "UP"
	StatusStarting     = "STARTING"
	StatusOutOfService = "OUT_OF_SERVICE"
	// StatusAll is a filter value only: it selects instances of every status.
	StatusAll = "ALL"
)

// IndexHeader is the response header that carries a tenant's change index on the registry's list
// endpoints. Pass it back as ?index=N&wait=30s to block until something changes.
const IndexHeader = "A8-Index"

// Endpoint is the network address of a service instance.
type Endpoint struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// InstanceRegistration is the body of POST /api/v1/instances.
type InstanceRegistration struct {
	ServiceName string          `json:"service_name"`
	Endpoint    *Endpoint       `json:"endpoint"`
	TTL         int64           `json:"ttl,omitempty"` // seconds; 0 means the registry's default
	Status      string          `json:"status,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
}

// Links are the URLs of a registered instance.
type Links struct {
	Self      string `json:"self,omitempty"`
	Heartbeat string `json:"heartbeat,omitempty"`
}

// RegistrationResponse is the 201 body of POST /api/v1/instances.
type RegistrationResponse struct {
	ID    string `json:"id"`
	TTL   int64  `json:"ttl"` // seconds, after clamping to the registry's bounds
	Links Links  `json:"links"`
}

// Instance is a registered service instance as the registry lists it.
type Instance struct {
	ID            string          `json:"id"`
	ServiceName   string          `json:"service_name,omitempty"`
	Endpoint      *Endpoint       `json:"endpoint,omitempty"`
	TTL           int64           `json:"ttl,omitempty"` // seconds
	Status        string          `json:"status,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	LastHeartbeat *time.Time      `json:"last_heartbeat,omitempty"`
	Tags          []string        `json:"tags,omitempty"`
}

// InstanceList is the body of GET /api/v1/instances.
type InstanceList struct {
	Instances []Instance `json:"instances"`
}

// ServiceList is the body of GET /api/v1/services.
type ServiceList struct {
	Services []string `json:"services"`
}

// ServiceInstances is the body of GET /api/v1/services/{name}.
type ServiceInstances struct {
	ServiceName string     `json:"service_name"`
	Instances   []Instance `json:"instances"`
}

// RegistryError is the error body of the registry API.
type RegistryError struct {
	Error string `json:"Error"`
}
