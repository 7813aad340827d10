package ncxml

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get><filter>&lol3;</filter></get></rpc>`

const externalEntity = `<?xml version="1.0"?>
<!DOCTYPE rpc [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>&xxe;</get></rpc>`

func TestParseRPC(t *testing.T) {
	type result struct {
		MessageID string
		Operation xml.Name
		Inner     string
		Reply     string
		Tag       ErrorTag
		NilReq    bool
	}
	for _, tc := range []struct {
		desc string
		msg  string
		want result
	}{{
		desc: "default namespace",
		msg:  `<?xml version="1.0" encoding="UTF-8"?><rpc message-id="101" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get-config><source><running/></source></get-config></rpc>`,
		want: result{MessageID: "101", Operation: xml.Name{Space: BaseNS, Local: "get-config"}, Inner: "<source><running/></source>",
			Reply: `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="101"><ok/></rpc-reply>`},
	}, {
		desc: "nc prefix",
		msg:  `<nc:rpc xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="7"><nc:close-session/></nc:rpc>`,
		want: result{MessageID: "7", Operation: xml.Name{Space: BaseNS, Local: "close-session"},
			Reply: `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="7"><ok/></rpc-reply>`},
	}, {
		desc: "RFC 6241 4.1 extra attributes echoed",
		msg: `<rpc message-id="101" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:ex="http://example.net/content/1.0" ex:user-id="fred">
  <get/>
</rpc>`,
		want: result{MessageID: "101", Operation: xml.Name{Space: BaseNS, Local: "get"},
			Reply: `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="101" ex:user-id="fred" xmlns:ex="http://example.net/content/1.0"><ok/></rpc-reply>`},
	}, {
		desc: "operation in its own namespace",
		msg:  `<rpc message-id="a&amp;b" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><generate-csr xmlns="urn:pkiagent:yang:pki-authority"><name>x</name></generate-csr></rpc>`,
		want: result{MessageID: "a&b", Operation: xml.Name{Space: "urn:pkiagent:yang:pki-authority", Local: "generate-csr"}, Inner: "<name>x</name>",
			Reply: `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="a&amp;b"><ok/></rpc-reply>`},
	}, {
		desc: "missing message-id",
		msg:  `<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`,
		want: result{Operation: xml.Name{Space: BaseNS, Local: "get"}, Tag: TagMissingAttribute,
			Reply: `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><rpc-error><error-type>rpc</error-type><error-tag>missing-attribute</error-tag><error-severity>error</error-severity><error-message xml:lang="en">&lt;rpc&gt; has no message-id attribute</error-message><error-info><bad-attribute>message-id</bad-attribute><bad-element>rpc</bad-element></error-info></rpc-error></rpc-reply>`},
	}, {
		desc: "two operations",
		msg:  `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/><get-config/></rpc>`,
		want: result{MessageID: "1", Operation: xml.Name{Space: BaseNS, Local: "get"}, Tag: TagUnknownElement},
	}, {
		desc: "no operation",
		msg:  `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"> </rpc>`,
		want: result{MessageID: "1", Tag: TagMissingElement},
	}, {
		desc: "not an rpc",
		msg:  `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>`,
		want: result{Tag: TagUnknownElement, NilReq: true},
	}, {
		desc: "rpc in no namespace",
		msg:  `<rpc message-id="1"><get/></rpc>`,
		want: result{Tag: TagUnknownElement, NilReq: true},
	}, {
		desc: "billion laughs",
		msg:  billionLaughs,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}, {
		desc: "external entity",
		msg:  externalEntity,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}, {
		desc: "undefined entity",
		msg:  `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>&lol;</get></rpc>`,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}, {
		desc: "undeclared prefix",
		msg:  `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><x:get/></rpc>`,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}, {
		desc: "repeated attribute",
		msg:  `<rpc message-id="1" message-id="2" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}, {
		desc: "mismatched tags",
		msg:  `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get></got></rpc>`,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}, {
		desc: "truncated",
		msg:  `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>`,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}, {
		desc: "two roots",
		msg:  `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc><rpc/>`,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}, {
		desc: "latin-1",
		msg:  `<?xml version="1.0" encoding="ISO-8859-1"?><rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}, {
		desc: "too deep",
		msg:  `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">` + strings.Repeat("<a>", MaxDepth) + strings.Repeat("</a>", MaxDepth) + `</rpc>`,
		want: result{Tag: TagMalformedMessage, NilReq: true},
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			req, err := ParseRPC([]byte(tc.msg))
			var got result
			if err != nil {
				var re *RPCError
				if !errors.As(err, &re) {
					t.Fatalf("ParseRPC error %v is not an *RPCError", err)
				}
				got.Tag = re.Tag
			}
			got.NilReq = req == nil
			if req != nil {
				got.MessageID, got.Operation, got.Inner = req.MessageID, req.Operation, string(req.Inner)
				if tc.want.Reply != "" {
					r := OK()
					if err != nil {
						r = ErrorFrom(err, "")
					}
					got.Reply = string(MarshalReply(req, r))
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseRPC (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequestUnmarshal(t *testing.T) {
	msg := `<nc:rpc xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:pka="urn:pkiagent:yang:pki-authority" message-id="1">
<nc:edit-config><nc:target><nc:candidate/></nc:target><nc:config><pka:authority><pka:router><pka:name>r1</pka:name></pka:router></pka:authority></nc:config></nc:edit-config></nc:rpc>`
	req, err := ParseRPC([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		XMLName xml.Name `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 edit-config"`
		Target  struct {
			Candidate *struct{} `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 candidate"`
		} `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 target"`
		Name string `xml:"config>authority>router>name"`
	}
	if err := req.Unmarshal(&v); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if v.Target.Candidate == nil || v.Name != "r1" {
		t.Errorf("Unmarshal = %+v", v)
	}
	d := req.Decoder()
	var names []string
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(xml.StartElement); ok {
			names = append(names, s.Name.Space+" "+s.Name.Local)
		}
	}
	want := []string{BaseNS + " edit-config", BaseNS + " target", BaseNS + " candidate", BaseNS + " config",
		"urn:pkiagent:yang:pki-authority authority", "urn:pkiagent:yang:pki-authority router", "urn:pkiagent:yang:pki-authority name"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("Decoder tokens (-want +got):\n%s", diff)
	}
}

func TestRequestElement(t *testing.T) {
	for _, tc := range []struct {
		desc, msg, element, inner string
	}{
		{"self-closing", `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">  <get/>  </rpc>`, "<get/>", ""},
		{"empty", `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get></get ></rpc>`, "<get></get >", ""},
		{"content", `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">` + "\n" + `<get a="1"> <b>x</b> </get></rpc>`, `<get a="1"> <b>x</b> </get>`, " <b>x</b> "},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			req, err := ParseRPC([]byte(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			if string(req.Element) != tc.element || string(req.Inner) != tc.inner {
				t.Errorf("Element %q Inner %q, want %q %q", req.Element, req.Inner, tc.element, tc.inner)
			}
		})
	}
}

func TestParseHello(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		msg     string
		want    *Hello
		wantErr bool
	}{{
		desc: "go-netconf",
		msg:  `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>`,
		want: &Hello{Capabilities: []string{CapBase10}},
	}, {
		desc: "prefixed with whitespace",
		msg: `<nc:hello xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><nc:capabilities>
  <nc:capability> urn:ietf:params:netconf:base:1.1 </nc:capability>
  <nc:capability>urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit</nc:capability>
</nc:capabilities></nc:hello>`,
		want: &Hello{Capabilities: []string{CapBase11, "urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit"}},
	}, {
		desc: "with session-id",
		msg:  `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities/><session-id>4</session-id></hello>`,
		want: &Hello{SessionID: 4, HasSessionID: true},
	}, {
		desc:    "wrong namespace",
		msg:     `<hello><capabilities/></hello>`,
		wantErr: true,
	}, {
		desc:    "doctype",
		msg:     `<!DOCTYPE hello [<!ENTITY a "b">]><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>`,
		wantErr: true,
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := ParseHello([]byte(tc.msg))
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseHello error = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseHello (-want +got):\n%s", diff)
			}
		})
	}
	h := &Hello{Capabilities: []string{"urn:x:y:1.0?a=b", CapBase10}}
	if !h.Has("urn:x:y:1.0") || !h.Has(CapBase10) || h.Has(CapBase11) || h.Has("urn:x") {
		t.Errorf("Has is wrong for %v", h.Capabilities)
	}
}

func TestRPCErrorXML(t *testing.T) {
	for _, tc := range []struct {
		desc string
		err  *RPCError
		want string
	}{{
		desc: "lock-denied",
		err:  LockDenied(3, "running is locked by session 3"),
		want: `<rpc-error><error-type>protocol</error-type><error-tag>lock-denied</error-tag><error-severity>error</error-severity><error-message xml:lang="en">running is locked by session 3</error-message><error-info><session-id>3</session-id></error-info></rpc-error>`,
	}, {
		desc: "lock held outside NETCONF",
		err:  LockDenied(0, "locked"),
		want: `<rpc-error><error-type>protocol</error-type><error-tag>lock-denied</error-tag><error-severity>error</error-severity><error-message xml:lang="en">locked</error-message><error-info><session-id>0</session-id></error-info></rpc-error>`,
	}, {
		desc: "path with namespaces and app tag",
		err: InvalidValue(Application, `polling-interval 0 is outside 1..168 "hours"`).
			WithPath("/pka:authority/pka:certificate-revocation-list[pka:url='http://x/?a&b']/pka:polling-interval", map[string]string{"pka": "urn:pkiagent:yang:pki-authority"}).
			WithAppTag("range"),
		want: `<rpc-error><error-type>application</error-type><error-tag>invalid-value</error-tag><error-severity>error</error-severity><error-app-tag>range</error-app-tag><error-path xmlns:pka="urn:pkiagent:yang:pki-authority">/pka:authority/pka:certificate-revocation-list[pka:url=&apos;http://x/?a&amp;b&apos;]/pka:polling-interval</error-path><error-message xml:lang="en">polling-interval 0 is outside 1..168 &quot;hours&quot;</error-message></rpc-error>`,
	}, {
		desc: "unknown-namespace",
		err:  UnknownNamespace(Protocol, "foo", "urn:x", ""),
		want: `<rpc-error><error-type>protocol</error-type><error-tag>unknown-namespace</error-tag><error-severity>error</error-severity><error-info><bad-element>foo</bad-element><bad-namespace>urn:x</bad-namespace></error-info></rpc-error>`,
	}, {
		desc: "malformed for base 1.0",
		err:  MalformedMessage("bad").ForBase10(),
		want: `<rpc-error><error-type>rpc</error-type><error-tag>operation-failed</error-tag><error-severity>error</error-severity><error-message xml:lang="en">bad</error-message></rpc-error>`,
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := string(tc.err.AppendXML(nil)); got != tc.want {
				t.Errorf("AppendXML:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	for _, tc := range []struct {
		err  *RPCError
		typ  ErrorType
		tag  ErrorTag
		info ErrorInfo
	}{
		{InUse(Protocol, ""), Protocol, TagInUse, ErrorInfo{}},
		{TooBig(Transport, ""), Transport, TagTooBig, ErrorInfo{}},
		{BadAttribute(RPC, "a", "e", ""), RPC, TagBadAttribute, ErrorInfo{BadAttribute: "a", BadElement: "e"}},
		{UnknownAttribute(Protocol, "a", "e", ""), Protocol, TagUnknownAttribute, ErrorInfo{BadAttribute: "a", BadElement: "e"}},
		{MissingElement(Protocol, "e", ""), Protocol, TagMissingElement, ErrorInfo{BadElement: "e"}},
		{BadElement(Application, "e", ""), Application, TagBadElement, ErrorInfo{BadElement: "e"}},
		{UnknownElement(Application, "e", ""), Application, TagUnknownElement, ErrorInfo{BadElement: "e"}},
		{AccessDenied(Application, ""), Application, TagAccessDenied, ErrorInfo{}},
		{ResourceDenied(Protocol, ""), Protocol, TagResourceDenied, ErrorInfo{}},
		{DataExists(""), Application, TagDataExists, ErrorInfo{}},
		{DataMissing(""), Application, TagDataMissing, ErrorInfo{}},
		{OperationNotSupported(Protocol, ""), Protocol, TagOperationNotSupported, ErrorInfo{}},
		{OperationFailed(RPC, ""), RPC, TagOperationFailed, ErrorInfo{}},
		{MalformedMessage(""), RPC, TagMalformedMessage, ErrorInfo{}},
	} {
		if tc.err.Type != tc.typ || tc.err.Tag != tc.tag || tc.err.Severity != SeverityError || !cmp.Equal(tc.err.Info, tc.info) {
			t.Errorf("%s: got %+v", tc.tag, tc.err)
		}
	}
	wrapped := errors.Join(errors.New("ctx"), DataExists("x"))
	if got := AsRPCErrors(wrapped); len(got) != 1 || got[0].Tag != TagDataExists {
		t.Errorf("AsRPCErrors(%v) = %v", wrapped, got)
	}
	list := fmt.Errorf("edit: %w", Errors{DataExists("a"), DataMissing("b")})
	if got := ErrorFrom(list, "").Errors(); len(got) != 2 || got[1].Tag != TagDataMissing {
		t.Errorf("ErrorFrom(%v) = %v", list, got)
	}
	r := ErrorFrom(errors.New("secret internal path /var/x"), "")
	if s := string(MarshalReply(nil, r)); strings.Contains(s, "secret") {
		t.Errorf("ErrorFrom leaked the internal error: %s", s)
	}
}

func TestMarshal(t *testing.T) {
	for _, tc := range []struct {
		desc string
		got  string
		want string
	}{
		{"data", string(MarshalReply(nil, Data([]byte(`<a xmlns="urn:a"/>`)))), `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><data><a xmlns="urn:a"/></data></rpc-reply>`},
		{"output", string(MarshalReply(nil, Output([]byte(`<csr xmlns="urn:a">x</csr>`)))), `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><csr xmlns="urn:a">x</csr></rpc-reply>`},
		{"empty output", string(MarshalReply(nil, Output(nil))), `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><ok/></rpc-reply>`},
		{"hello", string(MarshalHello([]string{CapBase10, CapBase11}, 9)), `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities><session-id>9</session-id></hello>`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("\n got %s\nwant %s", tc.got, tc.want)
			}
		})
	}
}

func FuzzParseRPC(f *testing.F) {
	for _, s := range []string{
		`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`,
		`<nc:rpc xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:ex="urn:ex" ex:a="&lt;" message-id="x"><ex:op a="1">t<b/></ex:op></nc:rpc>`,
		`<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get></get><x/></rpc>`,
		billionLaughs, externalEntity,
		`<?xml version="1.0"?><!-- c --><rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><?pi x?><get><![CDATA[x]]></get></rpc>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseRPC(data)
		if err != nil {
			var re *RPCError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not an *RPCError", err)
			}
			if (re.Tag == TagMalformedMessage) != (req == nil) && re.Tag != TagUnknownElement {
				t.Fatalf("malformed-message with a request, or another error without: %v", err)
			}
		}
		if req == nil {
			return
		}
		// The reply must itself be a well-formed, namespace-well-formed
		// rpc-reply with no repeated attribute.
		reply := MarshalReply(req, ErrorFrom(err, ""))
		w := newWalker(reply)
		if tok, err := w.next(); err != nil {
			t.Fatalf("reply %s: %v", reply, err)
		} else if s := tok.(*start); s.name != (xml.Name{Space: BaseNS, Local: "rpc-reply"}) {
			t.Fatalf("reply root %v", s.name)
		}
		if err := w.finish(); err != nil {
			t.Fatalf("reply %s: %v", reply, err)
		}
		if req.Element != nil {
			d := req.Decoder()
			for {
				if _, err := d.Token(); err != nil {
					if err.Error() != "EOF" {
						t.Fatalf("Decoder on %q: %v", req.Element, err)
					}
					break
				}
			}
		}
	})
}

func FuzzParseHello(f *testing.F) {
	f.Add([]byte(`<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>`))
	f.Add([]byte(billionLaughs))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHello(data)
		if err == nil && h == nil {
			t.Fatal("nil hello without error")
		}
	})
}
