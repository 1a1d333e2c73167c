package eureka

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/a8fabric/a8/internal/store"
)

// Limits of a Eureka registration. The service name, endpoint and tags are held to the registry's
// own limits (a8 instances must stay valid for the Amalgam8 API and sidecars); the Eureka data may be
// larger than an Amalgam8 registration's 1 KiB of metadata.
const (
	maxServiceNameBytes = 64
	maxEndpointBytes    = 128
	maxTags             = 64
	maxTagBytes         = 256
	maxIDBytes          = 256
	maxNameBytes        = 256
	maxRecordBytes      = 16 << 10
	defaultDuration     = 90 // seconds: Eureka's lease duration when the client gives none
	defaultRenewal      = 30
)

// fieldErr is a registration that cannot be accepted; it is answered with 400.
func fieldErr(field, format string, args ...any) error {
	return &DecodeError{field + ": " + fmt.Sprintf(format, args...)}
}

// validate checks what Eureka requires of a registration (instanceId, hostName, ipAddr, app,
// dataCenterInfo.name) and what a8 requires of names.
func validate(in *Instance) error {
	switch {
	case in.InstanceID == "":
		return fieldErr("instanceId", "required (or a hostName, or an AmazonInfo instance-id)")
	case len(in.InstanceID) > maxIDBytes:
		return fieldErr("instanceId", "longer than %d bytes (%d)", maxIDBytes, len(in.InstanceID))
	case strings.ContainsAny(in.InstanceID, "/?#") || hasControl(in.InstanceID):
		return fieldErr("instanceId", "%q contains /, ?, # or a control character", in.InstanceID)
	case in.HostName == "":
		return fieldErr("hostName", "required")
	case len(in.HostName) > maxNameBytes:
		return fieldErr("hostName", "longer than %d bytes", maxNameBytes)
	case in.IPAddr == "":
		return fieldErr("ipAddr", "required")
	case len(in.IPAddr) > maxNameBytes:
		return fieldErr("ipAddr", "longer than %d bytes", maxNameBytes)
	case in.App == "":
		return fieldErr("app", "required")
	case len(in.App) > maxNameBytes:
		return fieldErr("app", "longer than %d bytes", maxNameBytes)
	case strings.ContainsAny(in.App, "/?#") || hasControl(in.App):
		return fieldErr("app", "%q contains /, ?, # or a control character", in.App)
	case in.DataCenterInfo.Name == "":
		return fieldErr("dataCenterInfo.name", `required, for example {"@class": "`+ClassMyDataCenterInfo+`", "name": "MyOwn"}`)
	}
	return nil
}

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

// serviceName is the a8 service of a Eureka instance: its (first) VIP address, lower-cased, or, with
// no VIP address, its app name lower-cased.
func serviceName(in *Instance) (string, error) {
	name := ""
	if vips := splitVIPs(in.VIPAddress); len(vips) > 0 {
		name = strings.ToLower(vips[0])
	} else {
		name = strings.ToLower(in.App)
	}
	field := "vipAddress"
	if in.VIPAddress == "" {
		field = "app"
	}
	switch {
	case len(name) > maxServiceNameBytes:
		return "", fieldErr(field, "%q is longer than %d bytes, the longest service name a8 takes", name, maxServiceNameBytes)
	case strings.ContainsAny(name, " /?#") || hasControl(name):
		return "", fieldErr(field, "%q cannot name an a8 service (no spaces, /, ?, #)", name)
	}
	return name, nil
}

// endpoint is where sidecars reach a Eureka instance: the secure port over https when it is enabled,
// else the port over http; the host is ipAddr when it is an IP address (Eureka requires it, and the
// hostName of Spring and Java clients is often a machine name only that machine resolves), else
// hostName.
func endpoint(in *Instance) (store.Endpoint, error) {
	host := in.IPAddr
	if net.ParseIP(strings.Trim(host, "[]")) == nil && in.HostName != "" {
		host = in.HostName
	}
	host = strings.Trim(host, "[]")
	typ, port, field := "http", in.Port, "port"
	if in.SecurePortEnabled {
		typ, port, field = "https", in.SecurePort, "securePort"
	}
	if port < 1 || port > 65535 {
		return store.Endpoint{}, fieldErr(field, "%d is not a port a sidecar can call (1 to 65535)", port)
	}
	value := net.JoinHostPort(host, strconv.Itoa(port))
	if len(value) > maxEndpointBytes {
		return store.Endpoint{}, fieldErr("hostName", "endpoint %q is longer than %d bytes", value, maxEndpointBytes)
	}
	return store.Endpoint{Type: typ, Value: value}, nil
}

// tags reads the amalgam8.tags metadata: tags separated by ';' or ','.
func tags(in *Instance) ([]string, error) {
	raw := in.Metadata[TagsKey]
	if raw == "" {
		return nil, nil
	}
	var out []string
	for _, t := range strings.FieldsFunc(raw, func(r rune) bool { return r == ';' || r == ',' }) {
		t = strings.TrimSpace(t)
		if t == "" || contains(out, t) {
			continue
		}
		if len(t) > maxTagBytes {
			return nil, fieldErr("metadata."+TagsKey, "tag longer than %d bytes", maxTagBytes)
		}
		out = append(out, t)
	}
	if len(out) > maxTags {
		return nil, fieldErr("metadata."+TagsKey, "more than %d tags (%d)", maxTags, len(out))
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// a8Status is the a8 status of a Eureka status: the same, except OUT_OF_SERVICE, which is DOWN. An
// a8 OUT_OF_SERVICE instance never expires (Amalgam8's rule for parked instances) while a Eureka
// lease always runs, so an instance taken out of service and then stopped would stay forever; DOWN,
// like every status but UP, is left out of sidecars' lists and of lists without a status filter,
// and keeps the lease. Eureka clients still see OUT_OF_SERVICE: they read the Eureka record.
func a8Status(eurekaStatus string) string {
	switch eurekaStatus {
	case StatusUp, StatusStarting, StatusDown, StatusUnknown:
		return eurekaStatus
	}
	return StatusDown
}

// leaseTTL is the a8 lease of a Eureka lease: durationInSecs (default 90 s) clamped to the
// registry's [min, max] TTL.
func leaseTTL(durationSecs int, minTTL, maxTTL time.Duration) time.Duration {
	d := time.Duration(durationSecs) * time.Second
	if durationSecs <= 0 {
		d = defaultDuration * time.Second
	}
	return min(max(d, minTTL), maxTTL)
}

// toA8 turns a Eureka instance (already validated and completed) into the a8 instance to store.
func toA8(in *Instance, ttl time.Duration) (store.Instance, error) {
	svc, err := serviceName(in)
	if err != nil {
		return store.Instance{}, err
	}
	ep, err := endpoint(in)
	if err != nil {
		return store.Instance{}, err
	}
	tg, err := tags(in)
	if err != nil {
		return store.Instance{}, err
	}
	meta, err := json.Marshal(map[string]*Instance{MetadataKey: in})
	if err != nil {
		return store.Instance{}, fmt.Errorf("encode eureka record: %w", err)
	}
	if len(meta) > maxRecordBytes {
		return store.Instance{}, fieldErr("instance", "%d bytes of Eureka data; at most %d are kept per instance", len(meta), maxRecordBytes)
	}
	return store.Instance{
		ID:          ID(in.InstanceID),
		ServiceName: svc,
		Endpoint:    ep,
		Status:      a8Status(in.EffectiveStatus()),
		Tags:        tg,
		Metadata:    meta,
		TTL:         ttl,
	}, nil
}

// record returns the Eureka data kept in an a8 instance's metadata, or nil if it has none (the
// instance was registered through the Amalgam8 API, or comes from a catalog).
func record(a8 *store.Instance) *Instance {
	if len(a8.Metadata) == 0 || !bytes.Contains(a8.Metadata, []byte(`"`+MetadataKey+`"`)) {
		return nil
	}
	var m struct {
		Eureka *Instance `json:"eureka"`
	}
	if err := json.Unmarshal(a8.Metadata, &m); err != nil || m.Eureka == nil || m.Eureka.InstanceID == "" || m.Eureka.App == "" {
		return nil
	}
	return m.Eureka
}

// fromA8 is what Eureka clients see of an a8 instance: its Eureka record with the lease's last
// renewal if it has one, else a rendering of the native instance: instanceId = the a8 id, app = the
// service name upper-cased, vipAddress = secureVipAddress = the service name, host and port from the
// endpoint, tags as amalgam8.tags metadata. seen (Unix ms) is when this version of it was first seen.
// isEureka reports whether the instance has a Eureka record.
func fromA8(a8 *store.Instance, seen int64) (in *Instance, isEureka bool) {
	renewed := int64(0)
	if !a8.LastHeartbeat.IsZero() {
		renewed = a8.LastHeartbeat.UnixMilli()
	}
	if in := record(a8); in != nil {
		in.LeaseInfo.LastRenewalTimestamp = renewed
		in.ActionType = ""
		return in, true
	}
	host, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(a8.Endpoint.Value, "http://"), "https://"))
	if err != nil {
		host, p = strings.TrimSuffix(a8.Endpoint.Value, "/"), ""
	}
	portN, _ := strconv.Atoi(p)
	secure := a8.Endpoint.Type == "https"
	if portN == 0 {
		portN = 80
		if secure {
			portN = 443
		}
	}
	in = &Instance{
		InstanceID:        a8.ID,
		App:               strings.ToUpper(a8.ServiceName),
		HostName:          host,
		IPAddr:            host,
		Status:            eurekaStatus(a8.Status),
		OverriddenStatus:  StatusUnknown,
		Port:              portN,
		PortEnabled:       !secure,
		SecurePort:        portN,
		SecurePortEnabled: secure,
		CountryID:         1,
		DataCenterInfo:    DataCenterInfo{Class: ClassDefaultDataCenterInfo, Name: DataCenterMyOwn},
		LeaseInfo: LeaseInfo{
			RenewalIntervalInSecs: max(1, int(a8.TTL/time.Second)/3),
			DurationInSecs:        int(a8.TTL / time.Second),
			LastRenewalTimestamp:  renewed,
		},
		Metadata:             nativeMetadata(a8),
		VIPAddress:           a8.ServiceName,
		SecureVIPAddress:     a8.ServiceName,
		LastUpdatedTimestamp: seen,
		LastDirtyTimestamp:   seen,
	}
	if a8.Endpoint.Type == "http" || secure {
		in.HomePageURL = a8.Endpoint.Type + "://" + net.JoinHostPort(host, strconv.Itoa(portN)) + "/"
	}
	return in, false
}

// eurekaStatus is how a native a8 status shows to Eureka clients.
func eurekaStatus(s string) string {
	if st, ok := ParseStatus(s); ok {
		return st
	}
	return StatusUnknown
}

// nativeMetadata flattens an a8 instance's metadata into Eureka's string map (an object's string
// values as they are, other values as JSON; anything but an object under "amalgam8.metadata"), and
// its tags into amalgam8.tags.
func nativeMetadata(a8 *store.Instance) map[string]string {
	out := map[string]string{}
	if len(a8.Metadata) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(a8.Metadata, &obj); err == nil && obj != nil {
			for k, v := range obj {
				var s string
				if json.Unmarshal(v, &s) == nil {
					out[k] = s
				} else {
					out[k] = string(v)
				}
			}
		} else {
			out["amalgam8.metadata"] = string(a8.Metadata)
		}
	}
	if len(a8.Tags) > 0 {
		out[TagsKey] = strings.Join(a8.Tags, ",")
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
