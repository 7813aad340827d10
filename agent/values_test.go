package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
)

// TestValueErrorsInOperatorWords: a value that does not fit the model is
// refused naming the YANG path of the leaf and the rule, never a Go type,
// a struct field, a gRPC status or the value whole.
func TestValueErrorsInOperatorWords(t *testing.T) {
	str := func(s string) *gnmi.TypedValue {
		return &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: s}}
	}
	ietf := func(s string) *gnmi.TypedValue {
		return &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
	}
	const r1, crl = "/authority/router[name=r1]", "/authority/certificate-revocation-list[url=http://x/a.crl]"
	huge := strings.Repeat("z", 1<<20)
	tests := []struct {
		desc, path string
		val        *gnmi.TypedValue
		wantKind   error
		wantPath   string
		wantText   string
	}{
		{desc: "string for a boolean", path: r1 + "/peer-validation", val: ietf(`"yes"`), wantPath: r1 + "/peer-validation", wantText: `"yes" is not a boolean (true or false)`},
		{desc: "string_val for a boolean", path: r1 + "/peer-validation", val: str("yes"), wantPath: r1 + "/peer-validation", wantText: `"yes" is not a boolean (true or false)`},
		{desc: "null leaf", path: r1 + "/peer-validation", val: ietf(`null`), wantPath: r1 + "/peer-validation", wantText: "null is not a value of peer-validation"},
		{desc: "empty JSON", path: r1 + "/peer-validation", val: ietf(``), wantPath: r1 + "/peer-validation", wantText: "the value is empty"},
		{desc: "null entry", path: r1, val: ietf(`null`), wantPath: r1, wantText: "an entry of list router takes a JSON object, not null"},
		{desc: "unknown enum", path: r1 + "/certificate-failure-action", val: ietf(`"explode"`), wantPath: r1 + "/certificate-failure-action", wantText: `"explode" is not one of fail-hard, fail-soft`},
		{desc: "huge enum value", path: "/authority/trusted-ca-certificate[name=r]/validation-mode", val: str(huge), wantPath: "/authority/trusted-ca-certificate[name=r]/validation-mode", wantText: `... (1048576 bytes) is not one of strict, warn`},
		{desc: "string for an integer", path: crl + "/polling-interval", val: ietf(`"abc"`), wantPath: crl + "/polling-interval", wantText: `"abc" is a string; polling-interval is an integer (uint16, 1..168)`},
		{desc: "negative", path: crl + "/polling-interval", val: ietf(`-5`), wantPath: crl + "/polling-interval", wantText: "-5 is outside the range 1..168"},
		{desc: "beyond uint16", path: crl + "/polling-interval", val: ietf(`99999999999`), wantPath: crl + "/polling-interval", wantText: "99999999999 is outside the range 1..168"},
		{desc: "YANG range", path: crl + "/polling-interval", val: ietf(`0`), wantPath: crl + "/polling-interval", wantText: "0 is outside the range 1..168"},
		{desc: "fraction", path: crl + "/polling-interval", val: ietf(`2.5`), wantPath: crl + "/polling-interval", wantText: "2.5 is not an integer"},
		{desc: "boolean inside an entry", path: "/authority", val: ietf(`{"router":[{"name":"r1","peer-validation":"yes"}]}`), wantPath: r1 + "/peer-validation", wantText: `"yes" is not a boolean`},
		{desc: "unknown member", path: r1, val: ietf(`{"bogus":1}`), wantKind: ErrUnknownPath, wantPath: r1, wantText: `there is no element "bogus" here (the elements are: certificate-failure-action, name, peer, peer-validation, peering-common-name)`},
		{desc: "entry without its key", path: "/authority", val: ietf(`{"router":[{"peer-validation":true}]}`), wantPath: "/authority/router", wantText: "entry 1 of list router has no key name"},
		{desc: "nested entry without its key", path: r1, val: ietf(`{"peer":[{"name":"p"},{"identifier":"x"}]}`), wantPath: r1 + "/peer", wantText: "entry 2 of list peer has no key name"},
		{desc: "entry without its key at the root", path: "/", val: ietf(`{"pki-authority:authority":{"certificate-revocation-list":[{}]}}`), wantPath: "/authority/certificate-revocation-list", wantText: "entry 1 of list certificate-revocation-list has no key url"},
		{desc: "entry given twice", path: "/authority", val: ietf(`{"router":[{"name":"r1","peer-validation":true},{"pki-authority:name":"r1"}]}`), wantPath: "/authority/router", wantText: `entries 1 and 2 of list router have the same key name "r1"`},
		{desc: "list as a map", path: "/authority", val: ietf(`{"router":{"r1":{"name":"r1"}}}`), wantPath: "/authority/router", wantText: "router is a list: give its entries as a JSON array of objects"},
		{desc: "object for a string", path: r1 + "/peer[name=p]/identifier", val: ietf(`{"a":1}`), wantPath: r1 + "/peer[name=p]/identifier", wantText: "identifier takes a string, not an object"},
		{desc: "scalar for an entry", path: r1, val: str("x"), wantPath: r1, wantText: "takes a JSON object, not a scalar value"},
		{desc: "pattern of a huge name", path: "/authority/router[name=r1]/peering-common-name", val: str(huge), wantPath: r1 + "/peering-common-name", wantText: "a value of 1048576 characters is outside the allowed length 1..64"},
		{desc: "pattern", path: "/", val: ietf(`{"pki-authority:authority":{"certificate-revocation-list":[{"url":"ftp://x/a.crl"}]}}`), wantPath: "/authority/certificate-revocation-list[url=ftp://x/a.crl]/url", wantText: `"ftp://x/a.crl" does not match the pattern of type crl-url (http|https|file)://.+`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s, _ := newTestStore(t, Config{})
			_, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, tc.path), Value: tc.val})
			kind := tc.wantKind
			if kind == nil {
				kind = api.ErrInvalid
			}
			if !errors.Is(err, kind) {
				t.Fatalf("err = %v, want %v", err, kind)
			}
			var pe *api.PathError
			if !errors.As(err, &pe) || api.PathString(pe.Path) != tc.wantPath {
				t.Errorf("path = %q, want %q", api.PathString(pe.Path), tc.wantPath)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantText) {
				t.Errorf("error %q does not say %q", msg, tc.wantText)
			}
			for _, leak := range []string{"rpc error", "code = ", "struct field", "*gen.", "json_ietf_val", "float64", "interface", "(*string)", "<nil>", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q leaks %q", msg, leak)
				}
			}
			if len(msg) > 400 {
				t.Errorf("error is %d bytes", len(msg))
			}
		})
	}
}
