package eureka

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Documents are written by hand, straight into a byte slice, in the field order and spelling of
// Eureka's own codecs (InstanceInfoSerializer for JSON, XStream's Converters for XML): @Auto fields
// as strings, versions__delta and apps__hashcode as strings, the port number as a number with
// "@enabled" as a string, overriddenStatus in JSON and overriddenstatus in XML, empty metadata as
// Collections$EmptyMap. Maps are written in key order, so output is deterministic.

// item is an instance to write and the action type to give it ("" for none). e, if set, is the
// snapshot entry of the instance, whose rendering is kept.
type item struct {
	in     *Instance
	action string
	e      *entry
}

// group is an application to write.
type group struct {
	name  string
	items []item
}

// EncodeInstance writes {"instance": {...}} (JSON) or <instance>...</instance> (XML).
func EncodeInstance(in *Instance, asJSON bool) []byte {
	if asJSON {
		b := append([]byte(nil), `{"instance":`...)
		b = appendInstanceJSON(b, in, in.ActionType)
		return append(b, '}')
	}
	return appendInstanceXML(nil, in, in.ActionType)
}

// EncodeApplication writes {"application": {...}} or <application>...</application>.
func EncodeApplication(app *Application, asJSON bool) []byte {
	g := groupOf(app)
	if asJSON {
		b := append([]byte(nil), `{"application":`...)
		b = appendGroupJSON(b, &g)
		return append(b, '}')
	}
	return appendGroupXML(nil, &g)
}

// EncodeApplications writes a registry document.
func EncodeApplications(apps *Applications, asJSON bool) []byte {
	groups := make([]group, len(apps.Applications))
	for i, a := range apps.Applications {
		groups[i] = groupOf(a)
	}
	b := make([]byte, 0, sizeHint(groups))
	if asJSON {
		return appendAppsJSON(b, apps.VersionsDelta, apps.AppsHashcode, groups)
	}
	return appendAppsXML(b, apps.VersionsDelta, apps.AppsHashcode, groups)
}

// sizeHint is about the size of a document of groups, so that it is written without regrowing.
func sizeHint(groups []group) int {
	n := 256
	for i := range groups {
		n += 64 + 1024*len(groups[i].items)
	}
	return n
}

func groupOf(app *Application) group {
	g := group{name: app.Name, items: make([]item, len(app.Instances))}
	for i, in := range app.Instances {
		g.items[i] = item{in: in, action: in.ActionType}
	}
	return g
}

// JSON

func appendAppsJSON(b []byte, version int64, hash string, groups []group) []byte {
	b = append(b, `{"applications":{"versions__delta":"`...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, `","apps__hashcode":`...)
	b = appendJSONString(b, hash)
	b = append(b, `,"application":[`...)
	for i := range groups {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendGroupJSON(b, &groups[i])
	}
	return append(b, "]}}"...)
}

func appendGroupJSON(b []byte, g *group) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, g.name)
	b = append(b, `,"instance":[`...)
	for i, it := range g.items {
		if i > 0 {
			b = append(b, ',')
		}
		if it.e != nil && it.action == "" {
			b = append(b, it.e.rendered(true)...)
		} else {
			b = appendInstanceJSON(b, it.in, it.action)
		}
	}
	return append(b, "]}"...)
}

func appendInstanceJSON(b []byte, in *Instance, action string) []byte {
	b = append(b, `{"instanceId":`...)
	b = appendJSONString(b, in.InstanceID)
	b = append(b, `,"hostName":`...)
	b = appendJSONString(b, in.HostName)
	b = append(b, `,"app":`...)
	b = appendJSONString(b, in.App)
	b = append(b, `,"ipAddr":`...)
	b = appendJSONString(b, in.IPAddr)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, in.EffectiveStatus())
	b = append(b, `,"overriddenStatus":`...)
	b = appendJSONString(b, orUnknown(in.OverriddenStatus))
	b = append(b, `,"port":{"$":`...)
	b = strconv.AppendInt(b, int64(in.Port), 10)
	b = append(b, `,"@enabled":"`...)
	b = strconv.AppendBool(b, in.PortEnabled)
	b = append(b, `"},"securePort":{"$":`...)
	b = strconv.AppendInt(b, int64(in.SecurePort), 10)
	b = append(b, `,"@enabled":"`...)
	b = strconv.AppendBool(b, in.SecurePortEnabled)
	b = append(b, `"},"countryId":`...)
	b = strconv.AppendInt(b, int64(countryID(in)), 10)
	b = append(b, `,"dataCenterInfo":{"@class":`...)
	b = appendJSONString(b, in.DataCenterInfo.class())
	b = append(b, `,"name":`...)
	b = appendJSONString(b, dataCenterName(in))
	if len(in.DataCenterInfo.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b = appendMapJSON(b, in.DataCenterInfo.Metadata)
	}
	l := &in.LeaseInfo
	b = append(b, `},"leaseInfo":{"renewalIntervalInSecs":`...)
	b = strconv.AppendInt(b, int64(l.RenewalIntervalInSecs), 10)
	b = append(b, `,"durationInSecs":`...)
	b = strconv.AppendInt(b, int64(l.DurationInSecs), 10)
	b = append(b, `,"registrationTimestamp":`...)
	b = strconv.AppendInt(b, l.RegistrationTimestamp, 10)
	b = append(b, `,"lastRenewalTimestamp":`...)
	b = strconv.AppendInt(b, l.LastRenewalTimestamp, 10)
	b = append(b, `,"evictionTimestamp":`...)
	b = strconv.AppendInt(b, l.EvictionTimestamp, 10)
	b = append(b, `,"serviceUpTimestamp":`...)
	b = strconv.AppendInt(b, l.ServiceUpTimestamp, 10)
	b = append(b, `},"metadata":`...)
	if len(in.Metadata) == 0 {
		b = append(b, `{"@class":"`+emptyMapClass+`"}`...)
	} else {
		b = appendMapJSON(b, in.Metadata)
	}
	b = appendOptJSON(b, "appGroupName", in.AppGroupName)
	b = appendOptJSON(b, "homePageUrl", in.HomePageURL)
	b = appendOptJSON(b, "statusPageUrl", in.StatusPageURL)
	b = appendOptJSON(b, "healthCheckUrl", in.HealthCheckURL)
	b = appendOptJSON(b, "secureHealthCheckUrl", in.SecureHealthCheckURL)
	b = appendOptJSON(b, "vipAddress", in.VIPAddress)
	b = appendOptJSON(b, "secureVipAddress", in.SecureVIPAddress)
	b = append(b, `,"isCoordinatingDiscoveryServer":"`...)
	b = strconv.AppendBool(b, in.IsCoordinatingDiscoveryServer)
	b = append(b, `","lastUpdatedTimestamp":"`...)
	b = strconv.AppendInt(b, in.LastUpdatedTimestamp, 10)
	b = append(b, `","lastDirtyTimestamp":"`...)
	b = strconv.AppendInt(b, in.LastDirtyTimestamp, 10)
	b = append(b, '"')
	b = appendOptJSON(b, "actionType", action)
	b = appendOptJSON(b, "asgName", in.ASGName)
	return append(b, '}')
}

func appendOptJSON(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

func appendMapJSON(b []byte, m map[string]string) []byte {
	b = append(b, '{')
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string; plain ASCII is copied, anything else goes through
// encoding/json so escaping is the standard library's.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// XML

func appendAppsXML(b []byte, version int64, hash string, groups []group) []byte {
	b = append(b, "<applications><versions__delta>"...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, "</versions__delta><apps__hashcode>"...)
	b = appendXMLText(b, hash)
	b = append(b, "</apps__hashcode>"...)
	for i := range groups {
		b = appendGroupXML(b, &groups[i])
	}
	return append(b, "</applications>"...)
}

func appendGroupXML(b []byte, g *group) []byte {
	b = append(b, "<application><name>"...)
	b = appendXMLText(b, g.name)
	b = append(b, "</name>"...)
	for _, it := range g.items {
		if it.e != nil && it.action == "" {
			b = append(b, it.e.rendered(false)...)
		} else {
			b = appendInstanceXML(b, it.in, it.action)
		}
	}
	return append(b, "</application>"...)
}

func appendInstanceXML(b []byte, in *Instance, action string) []byte {
	b = append(b, "<instance>"...)
	b = appendXMLElem(b, "instanceId", in.InstanceID)
	b = appendXMLElem(b, "hostName", in.HostName)
	b = appendXMLElem(b, "app", in.App)
	b = appendXMLElem(b, "ipAddr", in.IPAddr)
	b = appendXMLElem(b, "status", in.EffectiveStatus())
	b = appendXMLElem(b, "overriddenstatus", orUnknown(in.OverriddenStatus))
	b = append(b, `<port enabled="`...)
	b = strconv.AppendBool(b, in.PortEnabled)
	b = append(b, `">`...)
	b = strconv.AppendInt(b, int64(in.Port), 10)
	b = append(b, `</port><securePort enabled="`...)
	b = strconv.AppendBool(b, in.SecurePortEnabled)
	b = append(b, `">`...)
	b = strconv.AppendInt(b, int64(in.SecurePort), 10)
	b = append(b, "</securePort><countryId>"...)
	b = strconv.AppendInt(b, int64(countryID(in)), 10)
	b = append(b, `</countryId><dataCenterInfo class="`...)
	b = appendXMLText(b, in.DataCenterInfo.class())
	b = append(b, `">`...)
	b = appendXMLElem(b, "name", dataCenterName(in))
	if len(in.DataCenterInfo.Metadata) > 0 {
		b = append(b, "<metadata>"...)
		b = appendMapXML(b, in.DataCenterInfo.Metadata)
		b = append(b, "</metadata>"...)
	}
	l := &in.LeaseInfo
	b = append(b, "</dataCenterInfo><leaseInfo><renewalIntervalInSecs>"...)
	b = strconv.AppendInt(b, int64(l.RenewalIntervalInSecs), 10)
	b = append(b, "</renewalIntervalInSecs><durationInSecs>"...)
	b = strconv.AppendInt(b, int64(l.DurationInSecs), 10)
	b = append(b, "</durationInSecs><registrationTimestamp>"...)
	b = strconv.AppendInt(b, l.RegistrationTimestamp, 10)
	b = append(b, "</registrationTimestamp><lastRenewalTimestamp>"...)
	b = strconv.AppendInt(b, l.LastRenewalTimestamp, 10)
	b = append(b, "</lastRenewalTimestamp><evictionTimestamp>"...)
	b = strconv.AppendInt(b, l.EvictionTimestamp, 10)
	b = append(b, "</evictionTimestamp><serviceUpTimestamp>"...)
	b = strconv.AppendInt(b, l.ServiceUpTimestamp, 10)
	b = append(b, "</serviceUpTimestamp></leaseInfo>"...)
	if len(in.Metadata) == 0 {
		b = append(b, `<metadata class="`+emptyMapClass+`"/>`...)
	} else {
		b = append(b, "<metadata>"...)
		b = appendMapXML(b, in.Metadata)
		b = append(b, "</metadata>"...)
	}
	b = appendOptXML(b, "appGroupName", in.AppGroupName)
	b = appendOptXML(b, "homePageUrl", in.HomePageURL)
	b = appendOptXML(b, "statusPageUrl", in.StatusPageURL)
	b = appendOptXML(b, "healthCheckUrl", in.HealthCheckURL)
	b = appendOptXML(b, "secureHealthCheckUrl", in.SecureHealthCheckURL)
	b = appendOptXML(b, "vipAddress", in.VIPAddress)
	b = appendOptXML(b, "secureVipAddress", in.SecureVIPAddress)
	b = append(b, "<isCoordinatingDiscoveryServer>"...)
	b = strconv.AppendBool(b, in.IsCoordinatingDiscoveryServer)
	b = append(b, "</isCoordinatingDiscoveryServer><lastUpdatedTimestamp>"...)
	b = strconv.AppendInt(b, in.LastUpdatedTimestamp, 10)
	b = append(b, "</lastUpdatedTimestamp><lastDirtyTimestamp>"...)
	b = strconv.AppendInt(b, in.LastDirtyTimestamp, 10)
	b = append(b, "</lastDirtyTimestamp>"...)
	b = appendOptXML(b, "actionType", action)
	b = appendOptXML(b, "asgName", in.ASGName)
	return append(b, "</instance>"...)
}

func appendOptXML(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendXMLElem(b, name, v)
}

func appendXMLElem(b []byte, name, v string) []byte {
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, '>')
	b = appendXMLText(b, v)
	b = append(b, '<', '/')
	b = append(b, name...)
	return append(b, '>')
}

// appendMapXML writes each entry as <key>value</key>, as XStream's map converter does. A key that
// is not an XML name has its offending characters replaced with '_'.
func appendMapXML(b []byte, m map[string]string) []byte {
	for _, k := range sortedKeys(m) {
		b = appendXMLElem(b, xmlName(k), m[k])
	}
	return b
}

// appendXMLText appends s escaped for XML text and attribute values. Characters XML cannot carry
// (most control characters, invalid UTF-8) become U+FFFD.
func appendXMLText(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '&':
				b = append(b, "&amp;"...)
			case c == '<':
				b = append(b, "&lt;"...)
			case c == '>':
				b = append(b, "&gt;"...)
			case c == '"':
				b = append(b, "&quot;"...)
			case c == '\'':
				b = append(b, "&apos;"...)
			case c == '\t' || c == '\n':
				b = append(b, c)
			case c == '\r':
				b = append(b, "&#xD;"...)
			case c < 0x20 || c == 0x7f:
				b = append(b, "\uFFFD"...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// xmlName returns k if it is an XML name, else k with every character that cannot be in one (or
// start one) replaced with '_'.
func xmlName(k string) string {
	ok := k != ""
	for i, r := range k {
		if !nameRune(r, i == 0) {
			ok = false
			break
		}
	}
	if ok {
		return k
	}
	if k == "" {
		return "_"
	}
	out := make([]rune, 0, len(k))
	for i, r := range k {
		if !nameRune(r, i == 0) {
			r = '_'
		}
		out = append(out, r)
	}
	return string(out)
}

func nameRune(r rune, first bool) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r == ':':
		return true
	case r >= '0' && r <= '9', r == '-', r == '.':
		return !first
	case r >= 0xC0 && r != 0xD7 && r != 0xF7 && r < 0x2000, r >= 0x2070 && r < 0xD800 && (r < 0x2190 || r >= 0x2C00), r >= 0xF900 && r < 0xFFFE:
		return true
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func orUnknown(s string) string {
	if s == "" {
		return StatusUnknown
	}
	return s
}

// countryID is Eureka's default country, 1 (US), when none is given.
func countryID(in *Instance) int {
	if in.CountryID == 0 {
		return 1
	}
	return in.CountryID
}

func dataCenterName(in *Instance) string {
	if in.DataCenterInfo.Name == "" {
		return DataCenterMyOwn
	}
	return in.DataCenterInfo.Name
}
