package eureka

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Instance statuses (com.netflix.appinfo.InstanceInfo.InstanceStatus).
const (
	StatusUp           = "UP"
	StatusDown         = "DOWN"
	StatusStarting     = "STARTING"
	StatusOutOfService = "OUT_OF_SERVICE"
	StatusUnknown      = "UNKNOWN"
)

// Delta action types.
const (
	ActionAdded    = "ADDED"
	ActionModified = "MODIFIED"
	ActionDeleted  = "DELETED"
)

// Data center classes, as the @class of dataCenterInfo (JSON) or its class attribute (XML).
const (
	// ClassDefaultDataCenterInfo is what a real Eureka writes for a MyOwn data center (a marker the
	// Java client maps to MyDataCenterInfo).
	ClassDefaultDataCenterInfo = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
	// ClassMyDataCenterInfo is what fargo and older clients send for MyOwn.
	ClassMyDataCenterInfo = "com.netflix.appinfo.MyDataCenterInfo"
	// ClassAmazonInfo is an AWS data center, whose metadata holds instance-id and friends.
	ClassAmazonInfo = "com.netflix.appinfo.AmazonInfo"
)

// Data center names.
const (
	DataCenterMyOwn  = "MyOwn"
	DataCenterAmazon = "Amazon"
)

// emptyMapClass is how Eureka marks empty metadata.
const emptyMapClass = "java.util.Collections$EmptyMap"

// TagsKey is the metadata key whose value (tags separated by ';' or ',') becomes the a8 instance's
// tags, as in Amalgam8.
const TagsKey = "amalgam8.tags"

// MetadataKey is the key of an a8 instance's metadata under which a Eureka-registered instance's
// Eureka data is kept: {"eureka": <Instance as JSON>}.
const MetadataKey = "eureka"

// Instance is a Eureka InstanceInfo.
//
// Its JSON encoding (encoding/json, with these tags) is the form a8 keeps in the a8 instance's
// metadata under MetadataKey; the Eureka wire forms are written by EncodeInstance and friends and
// read by DecodeInstance and friends.
type Instance struct {
	InstanceID   string `json:"instanceId"`
	App          string `json:"app"`
	AppGroupName string `json:"appGroupName,omitempty"`
	HostName     string `json:"hostName"`
	IPAddr       string `json:"ipAddr"`
	// Status is the status the instance reports (in a document read from a Eureka server, the
	// status it shows). The status shown to clients is EffectiveStatus.
	Status string `json:"status"`
	// OverriddenStatus is the status set by PUT .../status; UNKNOWN means none.
	OverriddenStatus  string         `json:"overriddenStatus"`
	Port              int            `json:"port"`
	PortEnabled       bool           `json:"portEnabled"`
	SecurePort        int            `json:"securePort"`
	SecurePortEnabled bool           `json:"securePortEnabled"`
	CountryID         int            `json:"countryId"`
	DataCenterInfo    DataCenterInfo `json:"dataCenterInfo"`
	LeaseInfo         LeaseInfo      `json:"leaseInfo"`
	// Metadata is the instance's free-form metadata (values are strings in Eureka).
	Metadata                      map[string]string `json:"metadata,omitempty"`
	HomePageURL                   string            `json:"homePageUrl,omitempty"`
	StatusPageURL                 string            `json:"statusPageUrl,omitempty"`
	HealthCheckURL                string            `json:"healthCheckUrl,omitempty"`
	SecureHealthCheckURL          string            `json:"secureHealthCheckUrl,omitempty"`
	VIPAddress                    string            `json:"vipAddress,omitempty"`
	SecureVIPAddress              string            `json:"secureVipAddress,omitempty"`
	IsCoordinatingDiscoveryServer bool              `json:"isCoordinatingDiscoveryServer,omitempty"`
	LastUpdatedTimestamp          int64             `json:"lastUpdatedTimestamp"`
	LastDirtyTimestamp            int64             `json:"lastDirtyTimestamp"`
	ASGName                       string            `json:"asgName,omitempty"`
	// ActionType is the change an entry of a delta stands for (ADDED, MODIFIED, DELETED).
	ActionType string `json:"-"`
}

// DataCenterInfo says where an instance runs.
type DataCenterInfo struct {
	// Class is the Java class: ClassDefaultDataCenterInfo, ClassMyDataCenterInfo, ClassAmazonInfo or
	// a custom one. Empty means the default for Name.
	Class string `json:"class,omitempty"`
	// Name is MyOwn, Amazon, or a custom name.
	Name string `json:"name"`
	// Metadata is AmazonInfo's metadata (instance-id, availability-zone, ...).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// LeaseInfo is an instance's lease. Times are Unix milliseconds.
type LeaseInfo struct {
	RenewalIntervalInSecs int   `json:"renewalIntervalInSecs"`
	DurationInSecs        int   `json:"durationInSecs"`
	RegistrationTimestamp int64 `json:"registrationTimestamp"`
	LastRenewalTimestamp  int64 `json:"lastRenewalTimestamp,omitempty"`
	EvictionTimestamp     int64 `json:"evictionTimestamp,omitempty"`
	ServiceUpTimestamp    int64 `json:"serviceUpTimestamp"`
}

// Application is one Eureka application: the instances registered under one (upper-case) name.
type Application struct {
	Name      string
	Instances []*Instance
}

// Applications is a Eureka registry document (GET apps, apps/delta, vips/..).
type Applications struct {
	VersionsDelta int64
	AppsHashcode  string
	Applications  []*Application
}

// EffectiveStatus is the status Eureka clients see: the instance's own DOWN or STARTING wins (it
// knows best when it is not ready), then an override, then the reported status (Eureka's
// DownOrStartingRule, OverrideExistsRule, AlwaysMatchInstanceStatusRule).
func (in *Instance) EffectiveStatus() string {
	switch in.Status {
	case StatusDown, StatusStarting:
		return in.Status
	}
	if in.OverriddenStatus != "" && in.OverriddenStatus != StatusUnknown {
		return in.OverriddenStatus
	}
	if in.Status == "" {
		return StatusUp
	}
	return in.Status
}

// isAmazon reports whether the data center is AWS.
func (d *DataCenterInfo) isAmazon() bool {
	return strings.EqualFold(d.Name, DataCenterAmazon) || d.Class == ClassAmazonInfo
}

// class is the class to write: the one given, else the default for the name.
func (d *DataCenterInfo) class() string {
	switch {
	case d.Class != "":
		return d.Class
	case d.isAmazon():
		return ClassAmazonInfo
	}
	return ClassDefaultDataCenterInfo
}

// ParseStatus returns the status named by s (case-insensitive) and whether s names one; anything
// else is UNKNOWN, as InstanceStatus.toEnum does.
func ParseStatus(s string) (string, bool) {
	switch u := strings.ToUpper(strings.TrimSpace(s)); u {
	case StatusUp, StatusDown, StatusStarting, StatusOutOfService, StatusUnknown:
		return u, true
	}
	return StatusUnknown, false
}

// ID is the a8 instance id of a Eureka instance id: the first 16 hex digits of
// sha256("eureka:" + instanceId). It depends on the instance id alone (not the app), as Eureka's
// GET instances/{id} does, so that every lookup is one map access.
func ID(instanceID string) string {
	sum := sha256.Sum256([]byte("eureka:" + instanceID))
	return hex.EncodeToString(sum[:8])
}

// splitVIPs splits a comma-separated VIP address list, dropping empty entries.
func splitVIPs(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
