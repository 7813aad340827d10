package ops

import (
	"bytes"
	"encoding/xml"
	"errors"
	"testing"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

// parseOp decodes an rpc message as the server does and returns its
// operation element as a tree.
func parseOp(data []byte) (*node, bool) {
	req, err := ncxml.ParseRPC(data)
	if err != nil || req == nil || req.Element == nil {
		return nil, false
	}
	d := req.Decoder()
	tok, err := d.Token()
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok {
		return nil, false
	}
	n, err := decodeTree(d, start)
	return n, err == nil
}

func rpcMsg(op string) []byte {
	return []byte(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">` + op + `</rpc>`)
}

// FuzzConvertConfig: edit-config XML -> edits never panics, and every
// refusal is an rpc-error.
func FuzzConvertConfig(f *testing.F) {
	for _, s := range []string{
		`<config><authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r</name><peer><name>p</name></peer></router></authority></config>`,
		`<config xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><authority xmlns="urn:pkiagent:yang:pki-authority" nc:operation="replace"><router nc:operation="delete"><name>r</name></router><certificate-revocation-list><url>http://x/y</url><polling-interval>5</polling-interval></certificate-revocation-list></authority></config>`,
		`<config><authority xmlns="urn:pkiagent:yang:pki-authority"><crl-settings><discover-from-certificates>maybe</discover-from-certificates></crl-settings><alarms/></authority></config>`,
		`<config><x:authority xmlns:x="urn:pkiagent:yang:pki-authority"><x:trusted-ca-certificate><x:name>a'b</x:name><x:content>&lt;</x:content></x:trusted-ca-certificate></x:authority></config>`,
	} {
		f.Add([]byte(s), "merge")
		f.Add([]byte(s), "none")
	}
	f.Fuzz(func(t *testing.T, data []byte, defOp string) {
		op, ok := parseOp(rpcMsg(`<edit-config>` + string(data) + `</edit-config>`))
		if !ok || op.child("config") == nil {
			return
		}
		switch defOp {
		case "merge", "replace", "none":
		default:
			defOp = "merge"
		}
		edits, err := convertConfig(op.child("config"), defOp, func([]*gnmi.PathElem) bool { return true })
		if err != nil {
			var re *ncxml.RPCError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not an rpc-error", err)
			}
			return
		}
		for _, e := range edits {
			if e.Path == nil || len(e.Path.Elem) == 0 {
				t.Fatalf("edit without a path: %+v", e)
			}
		}
	})
}

// FuzzSubtreeFilter: filter parsing and application never panic, and the
// result only holds elements of the data.
func FuzzSubtreeFilter(f *testing.F) {
	for _, s := range []string{
		`<filter><authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name></router></authority></filter>`,
		`<filter type="subtree"><authority xmlns="urn:pkiagent:yang:pki-authority"><router><name/><peer/></router><router><name>r2</name><peer><name>p</name></peer></router><crl-settings/></authority><authority xmlns="urn:pkiagent:yang:pki-authority"><router><peer-validation>true</peer-validation></router></authority></filter>`,
		`<filter type="xpath" select="/x"/>`,
		`<filter/>`,
	} {
		f.Add([]byte(s))
	}
	data := []*node{{name: xmlName(NS, "authority"), children: []*node{
		{name: xmlName(NS, "router"), children: []*node{{name: xmlName(NS, "name"), text: "r1"}, {name: xmlName(NS, "peer-validation"), text: "true"},
			{name: xmlName(NS, "peer"), children: []*node{{name: xmlName(NS, "name"), text: "p"}}}}},
		{name: xmlName(NS, "router"), children: []*node{{name: xmlName(NS, "name"), text: "r2"}}},
		{name: xmlName(NS, "crl-settings"), children: []*node{{name: xmlName(NS, "discover-from-certificates"), text: "false"}}},
	}}}
	full := marshalNodes(data, "")
	f.Fuzz(func(t *testing.T, raw []byte) {
		op, ok := parseOp(rpcMsg(`<get>` + string(raw) + `</get>`))
		if !ok {
			return
		}
		flt, err := parseFilter(op.child("filter"))
		if err != nil {
			return
		}
		out := marshalNodes(flt.apply(data), "")
		if len(out) > len(full) {
			t.Fatalf("filter result larger than the data: %s", out)
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("<authority")) {
			t.Fatalf("filter result %s", out)
		}
	})
}
