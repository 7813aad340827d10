package yanglinttest

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		desc string
		f    Format
		typ  Type
		data string
		want string // "" when valid
	}{
		{"json config", JSON, Config, `{"pki-authority:authority":{"router":[{"name":"r1","peer-validation":true}]}}`, ""},
		{"json list as a map", JSON, Config, `{"pki-authority:authority":{"router":{"r1":{"peer-validation":true}}}}`, "router"},
		{"json without module name", JSON, Config, `{"authority":{}}`, "authority"},
		{"json state in config", JSON, Config, `{"pki-authority:alarms":{"alarm":[{"id":"x"}]}}`, "alarms"},
		{"json state in data", JSON, Data, `{"pki-authority:alarms":{"alarm":[{"id":"x","severity":"major"}]}}`, ""},
		{"xml config", XML, Config, `<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name></router></authority>`, ""},
		{"xml missing key", XML, Config, `<authority xmlns="urn:pkiagent:yang:pki-authority"><router><peer-validation>true</peer-validation></router></authority>`, "key"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := Validate(tc.f, tc.typ, []byte(tc.data))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("valid data refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v; want a refusal naming %q", err, tc.want)
			}
		})
	}
}

func TestValidateNETCONF(t *testing.T) {
	const notif = `<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><eventTime>2026-12-01T00:00:00Z</eventTime>`
	for _, tc := range []struct {
		desc string
		typ  Type
		data string
		want string // "" when valid
	}{
		{"getconfig", GetConfig, `<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name></router></authority>`, ""},
		{"getconfig missing key", GetConfig, `<authority xmlns="urn:pkiagent:yang:pki-authority"><router><peer-validation>true</peer-validation></router></authority>`, "key"},
		{"get with monitoring state", Get, `<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></netconf-state>`, ""},
		{"notification", Notification, notif + `<netconf-session-start xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"><username>admin</username><session-id>1</session-id></netconf-session-start></notification>`, ""},
		{"notification of an unknown element", Notification, notif + `<no-such-event xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"/></notification>`, "no-such-event"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := ValidateNETCONF(tc.typ, []byte(tc.data), nil)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("valid data refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v; want a refusal naming %q", err, tc.want)
			}
		})
	}
}
