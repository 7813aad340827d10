package gnmi

import (
	"errors"
	"testing"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/protobuf/proto"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/telemetry"
)

// fuzzRoot is a small tree with every kind of node for Get walks.
func fuzzRoot() *gen.Device {
	d := &gen.Device{}
	a := d.GetOrCreateAuthority()
	ca := a.GetOrCreateTrustedCaCertificate("root")
	ca.Content = ygotString("PEM")
	pi := uint16(12)
	a.GetOrCreateCertificateRevocationList("http://x/y.crl").PollingInterval = &pi
	a.GetOrCreateRouter("r1").GetOrCreatePeer("p1").Identifier = ygotString("peer")
	al := d.GetOrCreateAlarms().GetOrCreateAlarm("a1")
	al.Severity = gen.PkiAuthority_Severity_major
	return d
}

// FuzzPathValue decodes a path string and a JSON value the way Get, Set and
// Subscribe do: schema check, wildcard walk and render, subscription match,
// and a transaction edit. Nothing may panic.
func FuzzPathValue(f *testing.F) {
	for _, s := range []struct {
		path, val string
	}{
		{"/authority/trusted-ca-certificate[name=root]", caJSON},
		{"/authority/certificate-revocation-list[url=http://x/y.crl]/polling-interval", "12"},
		{"/authority/.../name", `"x"`},
		{"/*/*[name=*]/state", `{}`},
		{"/alarms/alarm[id=a1]/severity", `"major"`},
		{"/authority/router[name=r1]/peer[name=p1]", `{"name":"p1","identifier":"x"}`},
		{"/pki-authority:authority/crl-settings", `{"http-proxy":"http://p"}`},
		{"/", `{"pki-authority:authority":{}}`},
		{"/authority/router", `[{"name":"r1","peer":[{"name":"p","identifier":null}]}]`},
		{"/authority", `{"router":[{"name":"r1","peer":[{"name":"p","state":{"reason":"x"}}]}],"crl-settings":null}`},
		{"/", `{"x:authority":{"flag":[null]}} {}`},
	} {
		f.Add(s.path, []byte(s.val))
	}
	root := fuzzRoot()
	store := agent.New(agent.Config{})
	f.Fuzz(func(t *testing.T, ps string, val []byte) {
		p, err := parsePathString(ps)
		if err != nil {
			return
		}
		if elems, err := fullPath(nil, p, true); err == nil {
			for _, enc := range []gnmi.Encoding{gnmi.Encoding_JSON, gnmi.Encoding_JSON_IETF, gnmi.Encoding_PROTO} {
				if _, err := render(root, elems, enc); err != nil && !isPathErr(err) {
					t.Fatalf("render %s: %v", ps, err)
				}
			}
			tr := telemetry.NewTree[int]()
			tr.Add(elems, 1)
			tr.Match(p.GetElem(), func(int) {})
			tr.MatchSubtree(p.GetElem(), func(int) {})
			tr.Remove(elems, 1)
			hasWildcard(elems)
		}
		req := &gnmi.SetRequest{
			Update:  []*gnmi.Update{{Path: p, Val: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonVal{JsonVal: val}}}},
			Replace: []*gnmi.Update{{Path: p, Val: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: val}}}},
		}
		edits, _, err := decodeSet(req)
		if err != nil {
			return
		}
		for _, e := range edits {
			tx := store.Begin(agent.Running)
			if err := tx.Apply(e); err == nil {
				tx.Validate()
			}
		}
	})
}

func isPathErr(err error) bool { return errors.Is(err, errPath) }

// FuzzSetRequest decodes arbitrary protobuf bytes as a SetRequest and runs
// the Set decoding and the transaction on them.
func FuzzSetRequest(f *testing.F) {
	seed := &gnmi.SetRequest{
		Prefix: &gnmi.Path{Origin: "pki-authority", Elem: []*gnmi.PathElem{{Name: "authority"}}},
		Delete: []*gnmi.Path{{Elem: []*gnmi.PathElem{{Name: "router", Key: map[string]string{"name": "r1"}}}}},
		Update: []*gnmi.Update{{Path: &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "trusted-ca-certificate", Key: map[string]string{"name": "root"}}}}, Val: jsonVal(caJSON)}},
	}
	b, _ := proto.Marshal(seed)
	f.Add(b)
	store := agent.New(agent.Config{})
	f.Fuzz(func(t *testing.T, b []byte) {
		req := &gnmi.SetRequest{}
		if proto.Unmarshal(b, req) != nil {
			return
		}
		edits, _, err := decodeSet(req)
		if err != nil {
			return
		}
		tx := store.Begin(agent.Running)
		if tx.Apply(edits...) == nil {
			tx.Validate()
		}
	})
}
