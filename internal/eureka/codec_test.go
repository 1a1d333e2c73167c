package eureka_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/a8fabric/a8/internal/eureka"
)

func goldenInstance() *eureka.Instance {
	return &eureka.Instance{
		InstanceID: "host1:demo:8080", HostName: "host1", App: "DEMO", IPAddr: "10.0.0.5",
		Status: "UP", OverriddenStatus: "UNKNOWN",
		Port: 8080, PortEnabled: true, SecurePort: 443, SecurePortEnabled: false, CountryID: 1,
		DataCenterInfo: eureka.DataCenterInfo{Class: eureka.ClassDefaultDataCenterInfo, Name: "MyOwn"},
		LeaseInfo: eureka.LeaseInfo{RenewalIntervalInSecs: 30, DurationInSecs: 90, RegistrationTimestamp: 1700000000000,
			LastRenewalTimestamp: 1700000030000, ServiceUpTimestamp: 1700000000000},
		Metadata:    map[string]string{"zone": "a"},
		HomePageURL: "http://host1:8080/", StatusPageURL: "http://host1:8080/info", HealthCheckURL: "http://host1:8080/health",
		VIPAddress: "demo", SecureVIPAddress: "demo",
		LastUpdatedTimestamp: 1700000000000, LastDirtyTimestamp: 1700000000000, ActionType: "ADDED",
	}
}

// The JSON of eureka.md's example, field for field.
const goldenInstanceJSON = `{"instance":{"instanceId":"host1:demo:8080","hostName":"host1","app":"DEMO","ipAddr":"10.0.0.5",
"status":"UP","overriddenStatus":"UNKNOWN",
"port":{"$":8080,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"},"countryId":1,
"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},
"leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90,"registrationTimestamp":1700000000000,
"lastRenewalTimestamp":1700000030000,"evictionTimestamp":0,"serviceUpTimestamp":1700000000000},
"metadata":{"zone":"a"},
"homePageUrl":"http://host1:8080/","statusPageUrl":"http://host1:8080/info","healthCheckUrl":"http://host1:8080/health",
"vipAddress":"demo","secureVipAddress":"demo","isCoordinatingDiscoveryServer":"false",
"lastUpdatedTimestamp":"1700000000000","lastDirtyTimestamp":"1700000000000","actionType":"ADDED"}}`

const goldenInstanceXML = `<instance><instanceId>host1:demo:8080</instanceId><hostName>host1</hostName><app>DEMO</app>` +
	`<ipAddr>10.0.0.5</ipAddr><status>UP</status><overriddenstatus>UNKNOWN</overriddenstatus>` +
	`<port enabled="true">8080</port><securePort enabled="false">443</securePort><countryId>1</countryId>` +
	`<dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"><name>MyOwn</name></dataCenterInfo>` +
	`<leaseInfo><renewalIntervalInSecs>30</renewalIntervalInSecs><durationInSecs>90</durationInSecs>` +
	`<registrationTimestamp>1700000000000</registrationTimestamp><lastRenewalTimestamp>1700000030000</lastRenewalTimestamp>` +
	`<evictionTimestamp>0</evictionTimestamp><serviceUpTimestamp>1700000000000</serviceUpTimestamp></leaseInfo>` +
	`<metadata><zone>a</zone></metadata>` +
	`<homePageUrl>http://host1:8080/</homePageUrl><statusPageUrl>http://host1:8080/info</statusPageUrl>` +
	`<healthCheckUrl>http://host1:8080/health</healthCheckUrl><vipAddress>demo</vipAddress><secureVipAddress>demo</secureVipAddress>` +
	`<isCoordinatingDiscoveryServer>false</isCoordinatingDiscoveryServer><lastUpdatedTimestamp>1700000000000</lastUpdatedTimestamp>` +
	`<lastDirtyTimestamp>1700000000000</lastDirtyTimestamp><actionType>ADDED</actionType></instance>`

func TestEncodeInstance_Golden(t *testing.T) {
	in := goldenInstance()
	if got, want := string(eureka.EncodeInstance(in, true)), compactJSON(t, goldenInstanceJSON); got != want {
		t.Errorf("JSON:\n got %s\nwant %s", got, want)
	}
	if got := string(eureka.EncodeInstance(in, false)); got != goldenInstanceXML {
		t.Errorf("XML:\n got %s\nwant %s", got, goldenInstanceXML)
	}
}

func goldenApps() *eureka.Applications {
	amazon := &eureka.Instance{
		InstanceID: "i-0abc", HostName: "ip-10-0-0-7", App: "BILLING", IPAddr: "10.0.0.7",
		Status: "OUT_OF_SERVICE", OverriddenStatus: "OUT_OF_SERVICE", Port: 7001, PortEnabled: false,
		SecurePort: 7002, SecurePortEnabled: true, CountryID: 1,
		DataCenterInfo: eureka.DataCenterInfo{Class: eureka.ClassAmazonInfo, Name: "Amazon",
			Metadata: map[string]string{"instance-id": "i-0abc", "availability-zone": "us-east-1a"}},
		LeaseInfo:  eureka.LeaseInfo{RenewalIntervalInSecs: 30, DurationInSecs: 90},
		VIPAddress: "billing", SecureVIPAddress: "billing-secure", LastUpdatedTimestamp: 1, LastDirtyTimestamp: 2,
		ASGName: "billing-v001",
	}
	demo := goldenInstance()
	demo.ActionType = ""
	demo.Metadata = nil
	return &eureka.Applications{VersionsDelta: 7, AppsHashcode: "OUT_OF_SERVICE_1_UP_1_", Applications: []*eureka.Application{
		{Name: "BILLING", Instances: []*eureka.Instance{amazon}},
		{Name: "DEMO", Instances: []*eureka.Instance{demo}},
	}}
}

const goldenAppsJSON = `{"applications":{"versions__delta":"7","apps__hashcode":"OUT_OF_SERVICE_1_UP_1_","application":[
{"name":"BILLING","instance":[{"instanceId":"i-0abc","hostName":"ip-10-0-0-7","app":"BILLING","ipAddr":"10.0.0.7",
"status":"OUT_OF_SERVICE","overriddenStatus":"OUT_OF_SERVICE","port":{"$":7001,"@enabled":"false"},
"securePort":{"$":7002,"@enabled":"true"},"countryId":1,
"dataCenterInfo":{"@class":"com.netflix.appinfo.AmazonInfo","name":"Amazon","metadata":{"availability-zone":"us-east-1a","instance-id":"i-0abc"}},
"leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90,"registrationTimestamp":0,"lastRenewalTimestamp":0,"evictionTimestamp":0,"serviceUpTimestamp":0},
"metadata":{"@class":"java.util.Collections$EmptyMap"},
"vipAddress":"billing","secureVipAddress":"billing-secure","isCoordinatingDiscoveryServer":"false",
"lastUpdatedTimestamp":"1","lastDirtyTimestamp":"2","asgName":"billing-v001"}]},
{"name":"DEMO","instance":[{"instanceId":"host1:demo:8080","hostName":"host1","app":"DEMO","ipAddr":"10.0.0.5",
"status":"UP","overriddenStatus":"UNKNOWN","port":{"$":8080,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"},"countryId":1,
"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},
"leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90,"registrationTimestamp":1700000000000,"lastRenewalTimestamp":1700000030000,"evictionTimestamp":0,"serviceUpTimestamp":1700000000000},
"metadata":{"@class":"java.util.Collections$EmptyMap"},
"homePageUrl":"http://host1:8080/","statusPageUrl":"http://host1:8080/info","healthCheckUrl":"http://host1:8080/health",
"vipAddress":"demo","secureVipAddress":"demo","isCoordinatingDiscoveryServer":"false",
"lastUpdatedTimestamp":"1700000000000","lastDirtyTimestamp":"1700000000000"}]}]}}`

const goldenAppsXML = `<applications><versions__delta>7</versions__delta><apps__hashcode>OUT_OF_SERVICE_1_UP_1_</apps__hashcode>` +
	`<application><name>BILLING</name><instance><instanceId>i-0abc</instanceId><hostName>ip-10-0-0-7</hostName><app>BILLING</app>` +
	`<ipAddr>10.0.0.7</ipAddr><status>OUT_OF_SERVICE</status><overriddenstatus>OUT_OF_SERVICE</overriddenstatus>` +
	`<port enabled="false">7001</port><securePort enabled="true">7002</securePort><countryId>1</countryId>` +
	`<dataCenterInfo class="com.netflix.appinfo.AmazonInfo"><name>Amazon</name><metadata><availability-zone>us-east-1a</availability-zone>` +
	`<instance-id>i-0abc</instance-id></metadata></dataCenterInfo><leaseInfo><renewalIntervalInSecs>30</renewalIntervalInSecs>` +
	`<durationInSecs>90</durationInSecs><registrationTimestamp>0</registrationTimestamp><lastRenewalTimestamp>0</lastRenewalTimestamp>` +
	`<evictionTimestamp>0</evictionTimestamp><serviceUpTimestamp>0</serviceUpTimestamp></leaseInfo>` +
	`<metadata class="java.util.Collections$EmptyMap"/><vipAddress>billing</vipAddress><secureVipAddress>billing-secure</secureVipAddress>` +
	`<isCoordinatingDiscoveryServer>false</isCoordinatingDiscoveryServer><lastUpdatedTimestamp>1</lastUpdatedTimestamp>` +
	`<lastDirtyTimestamp>2</lastDirtyTimestamp><asgName>billing-v001</asgName></instance></application>` +
	`<application><name>DEMO</name><instance><instanceId>host1:demo:8080</instanceId><hostName>host1</hostName><app>DEMO</app>` +
	`<ipAddr>10.0.0.5</ipAddr><status>UP</status><overriddenstatus>UNKNOWN</overriddenstatus>` +
	`<port enabled="true">8080</port><securePort enabled="false">443</securePort><countryId>1</countryId>` +
	`<dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"><name>MyOwn</name></dataCenterInfo>` +
	`<leaseInfo><renewalIntervalInSecs>30</renewalIntervalInSecs><durationInSecs>90</durationInSecs>` +
	`<registrationTimestamp>1700000000000</registrationTimestamp><lastRenewalTimestamp>1700000030000</lastRenewalTimestamp>` +
	`<evictionTimestamp>0</evictionTimestamp><serviceUpTimestamp>1700000000000</serviceUpTimestamp></leaseInfo>` +
	`<metadata class="java.util.Collections$EmptyMap"/>` +
	`<homePageUrl>http://host1:8080/</homePageUrl><statusPageUrl>http://host1:8080/info</statusPageUrl>` +
	`<healthCheckUrl>http://host1:8080/health</healthCheckUrl><vipAddress>demo</vipAddress><secureVipAddress>demo</secureVipAddress>` +
	`<isCoordinatingDiscoveryServer>false</isCoordinatingDiscoveryServer><lastUpdatedTimestamp>1700000000000</lastUpdatedTimestamp>` +
	`<lastDirtyTimestamp>1700000000000</lastDirtyTimestamp></instance></application></applications>`

func TestEncodeApplications_Golden(t *testing.T) {
	apps := goldenApps()
	if got, want := string(eureka.EncodeApplications(apps, true)), compactJSON(t, goldenAppsJSON); got != want {
		t.Errorf("JSON:\n got %s\nwant %s", got, want)
	}
	if got := string(eureka.EncodeApplications(apps, false)); got != goldenAppsXML {
		t.Errorf("XML:\n got %s\nwant %s", got, goldenAppsXML)
	}
	// What is written reads back the same, in both formats.
	for _, asJSON := range []bool{true, false} {
		back, err := eureka.DecodeApplications(eureka.EncodeApplications(apps, asJSON), "")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, apps) {
			t.Errorf("json %v: round trip:\n got %+v\nwant %+v", asJSON, back.Applications[0].Instances[0], apps.Applications[0].Instances[0])
		}
	}
}

func TestEncode_Escaping(t *testing.T) {
	in := goldenInstance()
	in.Metadata = map[string]string{"q": `a<b & "c"`, "1bad key": "x", "ctl": "a\x01b"}
	x := string(eureka.EncodeInstance(in, false))
	for _, want := range []string{`<q>a&lt;b &amp; &quot;c&quot;</q>`, `<_bad_key>x</_bad_key>`, "<ctl>a\uFFFDb</ctl>"} {
		if !strings.Contains(x, want) {
			t.Errorf("XML lacks %s:\n%s", want, x)
		}
	}
	back, err := eureka.DecodeInstance(eureka.EncodeInstance(in, true), "application/json")
	if err != nil || back.Metadata["q"] != `a<b & "c"` || back.Metadata["ctl"] != "a\x01b" {
		t.Errorf("JSON round trip of metadata: %v %v", back.Metadata, err)
	}
}

// TestDecodeInstance_Liberal reads what the clients in the wild send.
func TestDecodeInstance_Liberal(t *testing.T) {
	type want struct {
		id, status, override                        string
		port                                        int
		portOn                                      bool
		secure                                      int
		secureOn                                    bool
		class, dcName                               string
		metadata                                    map[string]string
		duration, renewal                           int
		dirty, updated                              int64
		countryID                                   int
		vip                                         string
		coordinating                                bool
		amazonZone                                  string
		registrationTimestamp, lastRenewalTimestamp int64
	}
	base := want{id: "i1", status: "UP", override: "UNKNOWN", port: 8080, portOn: true, dcName: "MyOwn"}
	with := func(f func(*want)) want { w := base; f(&w); return w }
	cases := []struct {
		name, ct, body string
		want           want
	}{
		{"fargo JSON: $ as a string, overriddenstatus empty, MyDataCenterInfo", "application/json",
			`{"instance":{"instanceId":"i1","hostName":"h","app":"demo","ipAddr":"1.2.3.4","vipAddress":"demo","secureVipAddress":"demo",
			"status":"UP","overriddenstatus":"","homePageUrl":"","statusPageUrl":"","healthCheckUrl":"","countryId":0,
			"dataCenterInfo":{"name":"MyOwn","@class":"com.netflix.appinfo.MyDataCenterInfo"},
			"leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90,"registrationTimestamp":0,"lastRenewalTimestamp":0,"evictionTimestamp":0,"serviceUpTimestamp":0},
			"metadata":{"k":"v"},"port":{"$":"8080","@enabled":"true"},"securePort":{"$":"0","@enabled":"false"}}}`,
			with(func(w *want) {
				w.class, w.metadata, w.duration, w.renewal, w.vip = eureka.ClassMyDataCenterInfo, map[string]string{"k": "v"}, 90, 30, "demo"
			})},
		{"eureka-js JSON: $ a number, @enabled a bool, DefaultDataCenterInfo, no leaseInfo", "application/json",
			`{"instance":{"app":"demo","instanceId":"i1","hostName":"h","ipAddr":"1.2.3.4","vipAddress":"demo","status":"UP",
			"port":{"$":8080,"@enabled":true},"securePort":{"$":8443,"@enabled":false},
			"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"}}}`,
			with(func(w *want) { w.secure, w.class, w.vip = 8443, eureka.ClassDefaultDataCenterInfo, "demo" })},
		{"Java/Spring JSON: overriddenStatus, @Auto fields as strings, EmptyMap metadata", "application/json; charset=UTF-8",
			`{"instance":{"instanceId":"i1","hostName":"h","app":"DEMO","ipAddr":"1.2.3.4","status":"STARTING","overriddenStatus":"OUT_OF_SERVICE",
			"port":{"$":8080,"@enabled":"true"},"securePort":{"$":443,"@enabled":"true"},"countryId":1,
			"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},
			"leaseInfo":{"renewalIntervalInSecs":"5","durationInSecs":"15","registrationTimestamp":"1700000000000","lastRenewalTimestamp":1700000000001},
			"metadata":{"@class":"java.util.Collections$EmptyMap"},"isCoordinatingDiscoveryServer":"true",
			"lastUpdatedTimestamp":"1700000000002","lastDirtyTimestamp":1700000000003}}`,
			with(func(w *want) {
				w.status, w.override, w.secure, w.secureOn, w.class = "STARTING", "OUT_OF_SERVICE", 443, true, eureka.ClassDefaultDataCenterInfo
				w.duration, w.renewal, w.updated, w.dirty, w.countryID, w.coordinating = 15, 5, 1700000000002, 1700000000003, 1, true
				w.registrationTimestamp, w.lastRenewalTimestamp = 1700000000000, 1700000000001
			})},
		{"bare port numbers, instance as an array, no @class, odd metadata values", "application/json",
			`{"instance":[{"instanceId":"i1","hostName":"h","app":"demo","ipAddr":"1.2.3.4","port":8080,"securePort":"8443",
			"dataCenterInfo":{"name":"MyOwn"},"status":"up","metadata":{"n":5,"b":true,"o":{"x":1},"nil":null}}]}`,
			with(func(w *want) {
				w.secure, w.metadata = 8443, map[string]string{"n": "5", "b": "true", "o": `{"x":1}`}
			})},
		{"no instanceId: the AWS instance-id", "application/json",
			`{"instance":{"hostName":"h","app":"demo","ipAddr":"1.2.3.4","port":{"$":8080},
			"dataCenterInfo":{"@class":"com.netflix.appinfo.AmazonInfo","name":"Amazon","metadata":{"instance-id":"i-1","availability-zone":"z"}}}}`,
			with(func(w *want) {
				w.id, w.class, w.dcName, w.amazonZone = "i-1", eureka.ClassAmazonInfo, "Amazon", "z"
			})},
		{"no instanceId, not AWS: the host name; unknown status", "",
			`{"instance":{"hostName":"h","app":"demo","ipAddr":"1.2.3.4","port":{"$":"8080","@enabled":"yes"},"dataCenterInfo":{"name":"MyOwn"},"status":"WEIRD"}}`,
			with(func(w *want) { w.id, w.status = "h", "UNKNOWN" })},
		{"Eureka XML", "application/xml",
			`<?xml version="1.0" encoding="UTF-8"?><instance><instanceId>i1</instanceId><hostName>h</hostName><app>DEMO</app><ipAddr>1.2.3.4</ipAddr>
			<status>UP</status><overriddenstatus>OUT_OF_SERVICE</overriddenstatus><port enabled="true">8080</port><securePort enabled="true">8443</securePort>
			<countryId>1</countryId><dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"><name>MyOwn</name></dataCenterInfo>
			<leaseInfo><renewalIntervalInSecs>30</renewalIntervalInSecs><durationInSecs>90</durationInSecs></leaseInfo>
			<metadata class="java.util.Collections$EmptyMap"/><vipAddress>demo</vipAddress><lastDirtyTimestamp>42</lastDirtyTimestamp></instance>`,
			with(func(w *want) {
				w.override, w.secure, w.secureOn, w.class, w.duration, w.renewal = "OUT_OF_SERVICE", 8443, true, eureka.ClassDefaultDataCenterInfo, 90, 30
				w.vip, w.dirty, w.countryID = "demo", 42, 1
			})},
		{"fargo XML: no class, metadata elements, securePort 0 disabled", "application/xml",
			`<instance><instanceId>i1</instanceId><hostName>h</hostName><app>DEMO</app><ipAddr>1.2.3.4</ipAddr><vipAddress>demo</vipAddress>
			<secureVipAddress>demo</secureVipAddress><status>UP</status><overriddenstatus></overriddenstatus><homePageUrl></homePageUrl>
			<countryId>0</countryId><dataCenterInfo><name>MyOwn</name><metadata></metadata></dataCenterInfo>
			<leaseInfo><renewalIntervalInSecs>30</renewalIntervalInSecs><durationInSecs>90</durationInSecs></leaseInfo>
			<metadata><amalgam8.tags>version=v1</amalgam8.tags><zone>a</zone></metadata>
			<port enabled="true">8080</port><securePort enabled="false">0</securePort></instance>`,
			with(func(w *want) {
				w.metadata, w.duration, w.renewal, w.vip = map[string]string{"amalgam8.tags": "version=v1", "zone": "a"}, 90, 30, "demo"
			})},
		{"XML without enabled attributes, sniffed without a Content-Type", "",
			`  <instance><instanceId>i1</instanceId><hostName>h</hostName><app>demo</app><ipAddr>1.2.3.4</ipAddr>
			<port>8080</port><securePort>8443</securePort><dataCenterInfo><name>MyOwn</name></dataCenterInfo></instance>`,
			with(func(w *want) { w.secure = 8443 })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := eureka.DecodeInstance([]byte(tc.body), tc.ct)
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			got := want{
				id: in.InstanceID, status: in.Status, override: in.OverriddenStatus, port: in.Port, portOn: in.PortEnabled,
				secure: in.SecurePort, secureOn: in.SecurePortEnabled, class: in.DataCenterInfo.Class, dcName: in.DataCenterInfo.Name,
				metadata: in.Metadata, duration: in.LeaseInfo.DurationInSecs, renewal: in.LeaseInfo.RenewalIntervalInSecs,
				dirty: in.LastDirtyTimestamp, updated: in.LastUpdatedTimestamp, countryID: in.CountryID, vip: in.VIPAddress,
				coordinating: in.IsCoordinatingDiscoveryServer, amazonZone: in.DataCenterInfo.Metadata["availability-zone"],
				registrationTimestamp: in.LeaseInfo.RegistrationTimestamp, lastRenewalTimestamp: in.LeaseInfo.LastRenewalTimestamp,
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("\n got %+v\nwant %+v", got, w)
			}
			if in.App != "DEMO" {
				t.Errorf("app %q: not upper-cased", in.App)
			}
		})
	}
}

func TestDecode_Errors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"empty", "  ", "empty body"},
		{"malformed JSON", `{"instance":`, "malformed JSON"},
		{"trailing data", `{"instance":{}} {}`, "data after"},
		{"not an object", `[1]`, "expected a JSON object"},
		{"no instance", `{"foo":1}`, "no instance"},
		{"bad port", `{"instance":{"app":"a","port":{"$":"http"}}}`, `port: "http" is not a port`},
		{"port out of range", `{"instance":{"app":"a","securePort":70000}}`, "securePort"},
		{"malformed XML", `<instance><app>x</instance>`, "malformed XML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := eureka.DecodeInstance([]byte(tc.body), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestDecodeApplications_Liberal reads registry documents whose lists are single objects (old
// XStream/Jettison JSON), whose versions__delta is a number, and XML.
func TestDecodeApplications_Liberal(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"objects for one", `{"applications":{"versions__delta":3,"apps__hashcode":"UP_1_","application":{"name":"demo","instance":
			{"instanceId":"i1","hostName":"h","app":"DEMO","ipAddr":"1.2.3.4","status":"UP","port":{"@enabled":"true","$":"8080"},"dataCenterInfo":{"name":"MyOwn"}}}}}`},
		{"arrays", `{"applications":{"versions__delta":"3","apps__hashcode":"UP_1_","application":[{"name":"DEMO","instance":[
			{"instanceId":"i1","hostName":"h","app":"DEMO","ipAddr":"1.2.3.4","status":"UP","port":{"$":8080,"@enabled":"true"},"dataCenterInfo":{"name":"MyOwn"}}]}]}}`},
		{"XML", `<applications><versions__delta>3</versions__delta><apps__hashcode>UP_1_</apps__hashcode><application><name>DEMO</name>
			<instance><instanceId>i1</instanceId><hostName>h</hostName><app>DEMO</app><ipAddr>1.2.3.4</ipAddr><status>UP</status>
			<port enabled="true">8080</port><dataCenterInfo><name>MyOwn</name></dataCenterInfo></instance></application></applications>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := eureka.DecodeApplications([]byte(tc.body), "")
			if err != nil {
				t.Fatal(err)
			}
			if a.VersionsDelta != 3 || a.AppsHashcode != "UP_1_" || ids(a) != "DEMO/i1" || a.Applications[0].Instances[0].Port != 8080 {
				t.Fatalf("%+v %s", a, ids(a))
			}
			if h := eureka.HashCode(a.Applications); h != a.AppsHashcode {
				t.Fatalf("HashCode %q, document says %q", h, a.AppsHashcode)
			}
		})
	}
	empty, err := eureka.DecodeApplications([]byte(`<applications/>`), "")
	if err != nil || len(empty.Applications) != 0 {
		t.Fatalf("<applications/>: %+v %v", empty, err)
	}
}

func TestHashCode(t *testing.T) {
	mk := func(statuses ...string) []*eureka.Application {
		app := &eureka.Application{Name: "A"}
		for _, s := range statuses {
			st, _ := eureka.ParseStatus(s)
			app.Instances = append(app.Instances, &eureka.Instance{Status: st, OverriddenStatus: eureka.StatusUnknown})
		}
		return []*eureka.Application{app}
	}
	for _, tc := range []struct {
		statuses []string
		want     string
	}{
		{nil, ""},
		{[]string{"UP"}, "UP_1_"},
		{[]string{"UP", "DOWN", "UP"}, "DOWN_1_UP_2_"},
		{[]string{"UP", "OUT_OF_SERVICE", "STARTING", "UNKNOWN", "DOWN"}, "DOWN_1_OUT_OF_SERVICE_1_STARTING_1_UNKNOWN_1_UP_1_"},
	} {
		if got := eureka.HashCode(mk(tc.statuses...)); got != tc.want {
			t.Errorf("HashCode(%v) = %q, want %q", tc.statuses, got, tc.want)
		}
	}
	// The override counts, not the reported status.
	apps := mk("UP")
	apps[0].Instances[0].OverriddenStatus = eureka.StatusOutOfService
	if got := eureka.HashCode(apps); got != "OUT_OF_SERVICE_1_" {
		t.Errorf("with an override: %q", got)
	}
}

func TestEffectiveStatus(t *testing.T) {
	for _, tc := range []struct{ status, override, want string }{
		{"UP", "UNKNOWN", "UP"},
		{"UP", "OUT_OF_SERVICE", "OUT_OF_SERVICE"},
		{"DOWN", "UP", "DOWN"},         // the instance's own DOWN wins
		{"STARTING", "UP", "STARTING"}, // and STARTING
		{"UNKNOWN", "UNKNOWN", "UNKNOWN"},
		{"", "", "UP"},
	} {
		in := &eureka.Instance{Status: tc.status, OverriddenStatus: tc.override}
		if got := in.EffectiveStatus(); got != tc.want {
			t.Errorf("status %s override %s: %s, want %s", tc.status, tc.override, got, tc.want)
		}
	}
}
