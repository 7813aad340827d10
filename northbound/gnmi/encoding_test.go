package gnmi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/protobuf/proto"

	"github.com/pkiagent/pkiagent/gen"
)

// provisionJSON is a config with every config list and container, some
// leaves at their default, some set.
const provisionJSON = `{
  "pki-authority:authority": {
    "trusted-ca-certificate": [
      {"name": "root", "content": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "validation-mode": "warn"},
      {"name": "corp", "content": "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"}
    ],
    "certificate-revocation-list": [
      {"url": "http://x/y.crl", "polling-interval": 12},
      {"url": "http://x/z.crl"}
    ],
    "crl-settings": {"http-proxy": "http://proxy:3128"},
    "client-certificate": [{"name": "router"}],
    "router": [
      {"name": "r1", "peer-validation": true, "peering-common-name": "r1.example.net",
       "peer": [{"name": "p1", "identifier": "p1.example.net"}, {"name": "p2"}]},
      {"name": "r2"}
    ]
  }
}`

func provision(t *testing.T, c gnmi.GNMIClient) {
	t.Helper()
	if _, err := c.Set(ctxT(t), &gnmi.SetRequest{Replace: []*gnmi.Update{{Path: &gnmi.Path{}, Val: ietfVal(provisionJSON)}}}); err != nil {
		t.Fatalf("provisioning: %v", err)
	}
}

// getJSON returns path -> JSON value of a Get.
func getJSON(t *testing.T, c gnmi.GNMIClient, path string, enc gnmi.Encoding, typ gnmi.GetRequest_DataType) map[string]string {
	t.Helper()
	r, err := c.Get(ctxT(t), &gnmi.GetRequest{Path: []*gnmi.Path{p(t, path)}, Encoding: enc, Type: typ})
	if err != nil {
		t.Fatalf("Get %s %s: %v", path, enc, err)
	}
	out := map[string]string{}
	for _, n := range r.GetNotification() {
		for _, u := range n.GetUpdate() {
			out[api.PathString(u.GetPath())] = valText(u.GetVal())
		}
	}
	return out
}

// With gnmic's default encoding (JSON), what a Get returns can be written
// back with Set at every level: the root, a container, a list, a list
// entry, a nested entry, a leaf and a defaulted leaf. Lists are arrays, no
// member carries a module name, and running is the same afterwards.
func TestGetJSONSetRoundTrip(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	provision(t, c)
	before := getJSON(t, c, "/", gnmi.Encoding_JSON_IETF, gnmi.GetRequest_CONFIG)
	for _, path := range []string{
		"/",
		"/authority",
		"/authority/router",
		"/authority/router[name=r1]",
		"/authority/router[name=r1]/peer[name=p1]",
		"/authority/trusted-ca-certificate",
		"/authority/certificate-revocation-list[url=http://x/y.crl]",
		"/authority/crl-settings",
		"/authority/router[name=r1]/peering-common-name",
		"/authority/trusted-ca-certificate[name=corp]/validation-mode",
		"/authority/crl-settings/discover-from-certificates",
	} {
		for _, op := range []string{"replace", "update"} {
			t.Run(op+" "+path, func(t *testing.T) {
				r, err := c.Get(ctxT(t), &gnmi.GetRequest{Path: []*gnmi.Path{p(t, path)}, Encoding: gnmi.Encoding_JSON, Type: gnmi.GetRequest_CONFIG})
				if err != nil {
					t.Fatal(err)
				}
				var ups []*gnmi.Update
				for _, n := range r.GetNotification() {
					for _, u := range n.GetUpdate() {
						if u.GetVal().GetJsonVal() == nil {
							t.Fatalf("Get JSON of %s: %v is not a json_val", path, u.GetVal())
						}
						if s := string(u.GetVal().GetJsonVal()); strings.Contains(s, "pki-authority:") || strings.Contains(s, `"r1":{`) || strings.Contains(s, `"p1":{`) {
							t.Errorf("Get JSON of %s has module names or lists keyed by name: %s", path, s)
						}
						ups = append(ups, &gnmi.Update{Path: u.GetPath(), Val: u.GetVal()})
					}
				}
				if len(ups) == 0 {
					t.Fatalf("Get of %s: no update", path)
				}
				req := &gnmi.SetRequest{Update: ups}
				if op == "replace" {
					req = &gnmi.SetRequest{Replace: ups}
				}
				if _, err := c.Set(ctxT(t), req); err != nil {
					t.Fatalf("Set %s of what Get %s returned: %v", op, path, err)
				}
				after := getJSON(t, c, "/", gnmi.Encoding_JSON_IETF, gnmi.GetRequest_CONFIG)
				if diff := cmp.Diff(before, after); diff != "" {
					t.Errorf("running changed (-before +after):\n%s", diff)
				}
			})
		}
	}
	// JSON and JSON_IETF differ only in the module names of top-level members.
	js := getJSON(t, c, "/", gnmi.Encoding_JSON, gnmi.GetRequest_CONFIG)["/"]
	ietf := strings.ReplaceAll(before["/"], `"pki-authority:authority"`, `"authority"`)
	if js != ietf {
		t.Errorf("JSON root\n%s\nis not JSON_IETF without module names\n%s", js, ietf)
	}
}

// Leaves left at their YANG default are reported with it, in a Get of the
// leaf and of what holds it, in every encoding; state has no defaults; a
// leaf with no default stays NotFound.
func TestDefaultsReported(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	// Before anything is configured, the non-presence crl-settings holds
	// its default.
	if got := getJSON(t, c, "/authority/crl-settings/discover-from-certificates", gnmi.Encoding_JSON_IETF, gnmi.GetRequest_CONFIG); got["/authority/crl-settings/discover-from-certificates"] != "true" {
		t.Errorf("discover-from-certificates on an empty agent: %v", got)
	}
	if _, err := c.Set(ctxT(t), &gnmi.SetRequest{Update: []*gnmi.Update{
		{Path: p(t, "/authority/trusted-ca-certificate[name=ca]"), Val: jsonVal(`{"name":"ca","content":"PEM"}`)},
		{Path: p(t, "/authority/certificate-revocation-list[url=http://x/y.crl]"), Val: jsonVal(`{"url":"http://x/y.crl"}`)},
		{Path: p(t, "/authority/router[name=a]"), Val: jsonVal(`{"name":"a"}`)},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc, path string
		enc        gnmi.Encoding
		typ        gnmi.GetRequest_DataType
		want       map[string]string
	}{
		{"validation-mode json_ietf", "/authority/trusted-ca-certificate[name=ca]/validation-mode", gnmi.Encoding_JSON_IETF, gnmi.GetRequest_CONFIG,
			map[string]string{"/authority/trusted-ca-certificate[name=ca]/validation-mode": `"strict"`}},
		{"validation-mode json, type ALL", "/authority/trusted-ca-certificate[name=ca]/validation-mode", gnmi.Encoding_JSON, gnmi.GetRequest_ALL,
			map[string]string{"/authority/trusted-ca-certificate[name=ca]/validation-mode": `"strict"`}},
		{"backoff-interval proto", "/authority/certificate-revocation-list[url=http://x/y.crl]/backoff-interval", gnmi.Encoding_PROTO, gnmi.GetRequest_CONFIG,
			map[string]string{"/authority/certificate-revocation-list[url=http://x/y.crl]/backoff-interval": "60"}},
		{"CRL entry", "/authority/certificate-revocation-list[url=http://x/y.crl]", gnmi.Encoding_JSON, gnmi.GetRequest_CONFIG,
			map[string]string{"/authority/certificate-revocation-list[url=http://x/y.crl]": `{"backoff-interval":60,"polling-interval":24,"url":"http://x/y.crl"}`}},
		{"authority", "/authority", gnmi.Encoding_JSON, gnmi.GetRequest_CONFIG,
			map[string]string{"/authority": `{"certificate-revocation-list":[{"backoff-interval":60,"polling-interval":24,"url":"http://x/y.crl"}],` +
				`"crl-settings":{"discover-from-certificates":true},` +
				`"expiry-alarms":{"major-days":7,"minor-days":30},` +
				`"router":[{"certificate-failure-action":"fail-soft","name":"a","peer-validation":false}],` +
				`"trusted-ca-certificate":[{"content":"PEM","name":"ca","validation-mode":"strict"}]}`}},
		{"router entry proto", "/authority/router[name=a]", gnmi.Encoding_PROTO, gnmi.GetRequest_CONFIG, map[string]string{
			"/authority/router[name=a]/name":                       "a",
			"/authority/router[name=a]/peer-validation":            "false",
			"/authority/router[name=a]/certificate-failure-action": "fail-soft",
		}},
		{"crl-settings", "/authority/crl-settings", gnmi.Encoding_JSON_IETF, gnmi.GetRequest_CONFIG,
			map[string]string{"/authority/crl-settings": `{"pki-authority:discover-from-certificates":true}`}},
		{"state has no defaults", "/authority", gnmi.Encoding_PROTO, gnmi.GetRequest_STATE, map[string]string{}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := getJSON(t, c, tc.path, tc.enc, tc.typ)
			for k, v := range got {
				var b bytes.Buffer
				if json.Compact(&b, []byte(v)) == nil {
					got[k] = b.String()
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	_, err := c.Get(ctxT(t), &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/router[name=a]/peering-common-name")}})
	if code(err) != "NotFound" {
		t.Errorf("Get of a leaf with no default, not set: %v; want NotFound", err)
	}
	// A set value replaces the default, a delete brings it back.
	set := func(r *gnmi.SetRequest) {
		t.Helper()
		if _, err := c.Set(ctxT(t), r); err != nil {
			t.Fatal(err)
		}
	}
	vm := "/authority/trusted-ca-certificate[name=ca]/validation-mode"
	set(&gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, vm), Val: strVal("warn")}}})
	if got := getJSON(t, c, vm, gnmi.Encoding_JSON, gnmi.GetRequest_CONFIG)[vm]; got != `"warn"` {
		t.Errorf("after set: %s", got)
	}
	set(&gnmi.SetRequest{Delete: []*gnmi.Path{p(t, vm)}})
	if got := getJSON(t, c, vm, gnmi.Encoding_JSON, gnmi.GetRequest_CONFIG)[vm]; got != `"strict"` {
		t.Errorf("after delete: %s", got)
	}
}

// ON_CHANGE streams see defaults as a Get does: a new entry brings its
// defaulted leaves, a deleted leaf goes back to its default, a deleted
// entry takes its defaulted leaves away.
func TestSubscribeOnChangeDefaults(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	col := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_STREAM, Encoding: gnmi.Encoding_JSON,
		Subscription: []*gnmi.Subscription{{Path: p(t, "/authority"), Mode: gnmi.SubscriptionMode_ON_CHANGE}}})
	got := col.until("sync", synced)
	if want := []leafUpdate{{"/authority/crl-settings/discover-from-certificates", "true"}, {"/authority/expiry-alarms/major-days", "7"}, {"/authority/expiry-alarms/minor-days", "30"}, {path: "SYNC"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("initial sync: %v; want %v", got, want)
	}
	set := func(r *gnmi.SetRequest) {
		t.Helper()
		if _, err := c.Set(ctxT(t), r); err != nil {
			t.Fatal(err)
		}
	}
	pv := "/authority/router[name=b]/peer-validation"
	set(&gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/router[name=b]"), Val: jsonVal(`{"name":"b"}`)}}})
	col.until("created entry with defaults", func(g []leafUpdate, s bool) bool {
		return hasUpdate(pv, "false")(g, s) && hasUpdate("/authority/router[name=b]/certificate-failure-action", `"fail-soft"`)(g, s)
	})
	set(&gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, pv), Val: &gnmi.TypedValue{Value: &gnmi.TypedValue_BoolVal{BoolVal: true}}}}})
	col.until("set", hasUpdate(pv, "true"))
	set(&gnmi.SetRequest{Delete: []*gnmi.Path{p(t, pv)}})
	col.until("deleted leaf back to its default", hasUpdate(pv, "false"))
	set(&gnmi.SetRequest{Delete: []*gnmi.Path{p(t, "/authority/router[name=b]")}})
	col.until("deleted entry", hasUpdate(pv, ""))
}

// Subscribe sends the encoding asked for, in every mode, with the values a
// Get of the same leaf returns.
func TestSubscribeEncodings(t *testing.T) {
	e := newEnv(t, envOpts{limits: Limits{MinSampleInterval: 50 * time.Millisecond}})
	c := e.admin()
	provision(t, c)
	// State with 64-bit counters (strings in RFC 7951), enums and times.
	st := alarmState("crl-unreachable:http://x/y.crl", "major")
	st.Alarms.Alarm["crl-unreachable:http://x/y.crl"].TimeRaised = ygotString("2026-12-01T10:00:00Z")
	cs := st.GetOrCreateAuthority().GetOrCreateCertificateRevocationList("http://x/y.crl").GetOrCreateState()
	cs.SizeBytes, cs.LastError = ygot.Uint64(1<<40), ygotString("connection refused")
	st.GetOrCreateStats().GetOrCreateSecurity().GetOrCreateCrlFetch().Failure = ygot.Uint64(3)
	e.state.set(st)
	const leaf = "/authority/certificate-revocation-list[url=http://x/y.crl]/polling-interval"
	for _, enc := range []gnmi.Encoding{gnmi.Encoding_JSON, gnmi.Encoding_JSON_IETF, gnmi.Encoding_PROTO} {
		// What a Get returns per leaf, in this encoding.
		want := map[string]*gnmi.TypedValue{}
		r, err := c.Get(ctxT(t), &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/.../*")}, Encoding: enc, Type: gnmi.GetRequest_ALL})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range r.GetNotification() {
			for _, u := range n.GetUpdate() {
				want[api.PathString(u.GetPath())] = u.GetVal()
			}
		}
		leaves := len(getJSON(t, c, "/.../*", gnmi.Encoding_PROTO, gnmi.GetRequest_ALL))
		// A counter64 is a JSON string in both JSON encodings.
		const counter = "/stats/security/crl-fetch/failure"
		if got, w := valText(want[counter]), map[gnmi.Encoding]string{gnmi.Encoding_PROTO: "3", gnmi.Encoding_JSON: `"3"`, gnmi.Encoding_JSON_IETF: `"3"`}[enc]; got != w {
			t.Errorf("%s %s = %s; want %s", enc, counter, got, w)
		}
		if leaves < 20 {
			t.Fatalf("Get of every leaf returned %d", leaves)
		}
		check := func(t *testing.T, mode string, n *gnmi.Notification) {
			t.Helper()
			for _, u := range n.GetUpdate() {
				k := api.PathString(u.GetPath())
				if w, ok := want[k]; ok && !proto.Equal(w, u.GetVal()) {
					t.Errorf("%s %s: %s = %v; Get says %v", mode, enc, k, u.GetVal(), w)
				}
				switch u.GetVal().GetValue().(type) {
				case *gnmi.TypedValue_JsonVal:
					if enc != gnmi.Encoding_JSON {
						t.Errorf("%s %s: json_val at %s", mode, enc, k)
					}
				case *gnmi.TypedValue_JsonIetfVal:
					if enc != gnmi.Encoding_JSON_IETF {
						t.Errorf("%s %s: json_ietf_val at %s", mode, enc, k)
					}
				default:
					if enc != gnmi.Encoding_PROTO {
						t.Errorf("%s %s: %T at %s", mode, enc, u.GetVal().GetValue(), k)
					}
				}
			}
		}
		// readSync reads until sync and checks every update.
		readSync := func(t *testing.T, mode string, col *collector) int {
			t.Helper()
			n := 0
			for r := range col.msgs {
				if r.GetSyncResponse() {
					return n
				}
				check(t, mode, r.GetUpdate())
				n += len(r.GetUpdate().GetUpdate())
			}
			t.Fatalf("%s: stream ended: %v", mode, <-col.errc)
			return 0
		}
		list := func(mode gnmi.SubscriptionList_Mode, sm gnmi.SubscriptionMode) *gnmi.SubscriptionList {
			return &gnmi.SubscriptionList{Mode: mode, Encoding: enc, Subscription: []*gnmi.Subscription{{Path: &gnmi.Path{}, Mode: sm, SampleInterval: uint64(50 * time.Millisecond)}}}
		}
		t.Run(enc.String(), func(t *testing.T) {
			if n := readSync(t, "ONCE", subscribe(t, c, list(gnmi.SubscriptionList_ONCE, 0))); n != leaves {
				t.Errorf("ONCE sent %d leaves; Get has %d", n, leaves)
			}
			poll := subscribe(t, c, list(gnmi.SubscriptionList_POLL, 0))
			readSync(t, "POLL sync", poll)
			if err := poll.cl.Send(&gnmi.SubscribeRequest{Request: &gnmi.SubscribeRequest_Poll{Poll: &gnmi.Poll{}}}); err != nil {
				t.Fatal(err)
			}
			if n := readSync(t, "POLL", poll); n != leaves {
				t.Errorf("POLL sent %d leaves; Get has %d", n, leaves)
			}
			sample := subscribe(t, c, list(gnmi.SubscriptionList_STREAM, gnmi.SubscriptionMode_SAMPLE))
			readSync(t, "SAMPLE sync", sample)
			for i := 0; i < 2; i++ {
				r := <-sample.msgs
				check(t, "SAMPLE", r.GetUpdate())
			}
			onChange := subscribe(t, c, list(gnmi.SubscriptionList_STREAM, gnmi.SubscriptionMode_ON_CHANGE))
			readSync(t, "ON_CHANGE sync", onChange)
			// A change: 13 hours, then back to 12 for the next encoding.
			for _, v := range []uint64{13, 12} {
				if _, err := c.Set(ctxT(t), &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, leaf), Val: &gnmi.TypedValue{Value: &gnmi.TypedValue_UintVal{UintVal: v}}}}}); err != nil {
					t.Fatal(err)
				}
				r := <-onChange.msgs
				u := r.GetUpdate().GetUpdate()
				if len(u) != 1 || api.PathString(u[0].GetPath()) != leaf || valText(u[0].GetVal()) != fmt.Sprint(v) {
					t.Fatalf("ON_CHANGE %s: %v", enc, r)
				}
				want[leaf] = u[0].GetVal()
				if v == 12 {
					check(t, "ON_CHANGE", r.GetUpdate())
				}
			}
		})
	}
}

// A client that compresses with gzip (gnmic --gzip) is served.
func TestGzip(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.client("admin", adminPW, grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)))
	provision(t, c)
	if got := getJSON(t, c, "/authority/router[name=r1]/peer-validation", gnmi.Encoding_JSON, gnmi.GetRequest_CONFIG); got["/authority/router[name=r1]/peer-validation"] != "true" {
		t.Errorf("Get over gzip: %v", got)
	}
	col := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_ONCE, Subscription: []*gnmi.Subscription{{Path: p(t, "/authority/router[name=r1]/name")}}})
	if got := col.until("once", synced); fmt.Sprint(got) != fmt.Sprint([]leafUpdate{{"/authority/router[name=r1]/name", `"r1"`}, {path: "SYNC"}}) {
		t.Errorf("Subscribe over gzip: %v", got)
	}
}

// A null value is refused, naming where it is, at every level and in both
// JSON encodings; nothing is created.
func TestSetNullRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	provision(t, c)
	before := e.store.Running()
	for _, tc := range []struct {
		desc, path, val, where string
	}{
		{"leaf", "/authority/router[name=r1]/peering-common-name", `null`, "the value is null"},
		{"new entry", "/authority/router[name=n1]", `null`, "the value is null"},
		{"container", "/authority/crl-settings", `null`, "the value is null"},
		{"root", "/", `null`, "the value is null"},
		{"member of an entry", "/authority/router[name=n1]", `{"name":"n1","peer-validation":null}`, "/authority/router[name=n1]/peer-validation is null"},
		{"entry of a nested list", "/authority", `{"router":[{"name":"n1","peer":[{"name":"q","identifier":null}]}]}`, "/authority/router[name=n1]/peer[name=q]/identifier is null"},
		{"list entry null", "/authority", `{"router":[null]}`, "/authority/router is null"},
		{"prefixed member", "/", `{"pki-authority:authority":{"crl-settings":null}}`, "/authority/crl-settings is null"},
	} {
		for _, enc := range []string{"json", "json_ietf"} {
			t.Run(tc.desc+" "+enc, func(t *testing.T) {
				v := jsonVal(tc.val)
				if enc == "json_ietf" {
					v = ietfVal(tc.val)
				}
				for _, req := range []*gnmi.SetRequest{
					{Update: []*gnmi.Update{{Path: p(t, tc.path), Val: v}}},
					{Replace: []*gnmi.Update{{Path: p(t, tc.path), Val: v}}},
				} {
					_, err := c.Set(ctxT(t), req)
					if code(err) != "InvalidArgument" || !strings.Contains(err.Error(), tc.where) || !strings.Contains(err.Error(), "a value is required; to delete use delete") {
						t.Errorf("got %v; want InvalidArgument naming %q", err, tc.where)
					}
				}
				if e.store.Running() != before {
					t.Error("a refused Set changed running")
				}
			})
		}
	}
}

// State (config false) inside a Set value is refused naming it: ygot would
// store it in running as config. A Get of type ALL is not written back
// whole; one of type CONFIG is (TestGetJSONSetRoundTrip).
func TestSetStateInValueRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	provision(t, c)
	d := &gen.Device{}
	d.GetOrCreateAuthority().GetOrCreateRouter("r1").GetOrCreatePeer("p1").GetOrCreateState().Reason = ygotString("expired")
	d.GetOrCreateAlarms().GetOrCreateAlarm("x").Text = ygotString("t")
	e.state.set(d)
	before := e.store.Running()
	for _, tc := range []struct{ path, where string }{
		{"/authority/router[name=r1]", "/authority/router[name=r1]/peer[name=p1]/state"},
		{"/", "/alarms"},
	} {
		for _, enc := range []gnmi.Encoding{gnmi.Encoding_JSON, gnmi.Encoding_JSON_IETF} {
			r, err := c.Get(ctxT(t), &gnmi.GetRequest{Path: []*gnmi.Path{p(t, tc.path)}, Encoding: enc, Type: gnmi.GetRequest_ALL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Set(ctxT(t), &gnmi.SetRequest{Replace: r.GetNotification()[0].GetUpdate()})
			// Of the whole tree, the first state container found is named.
			if code(err) != "InvalidArgument" || !(strings.Contains(err.Error(), tc.where+" is state (config false)") ||
				tc.path == "/" && strings.Contains(err.Error(), "/system/commit-history is state (config false)")) {
				t.Errorf("Set %s of a Get ALL %s: %v; want InvalidArgument naming %s", enc, tc.path, err, tc.where)
			}
		}
	}
	if e.store.Running() != before {
		t.Error("a refused Set changed running")
	}
}

// Refused Set paths and values name the path and the rule.
func TestSetErrorsNamePathAndRule(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	for _, tc := range []struct {
		desc, path string
		val        *gnmi.TypedValue
		want       []string
	}{
		{"unknown element", "/authority/nope", jsonVal(`{}`), []string{"update /authority/nope", `unknown element "nope"`, "/authority has ca-profile, certificate-revocation-list, client-certificate, crl-settings, expiry-alarms, router, trusted-ca-certificate"}},
		{"list without key", "/authority/router", jsonVal(`{}`), []string{"/authority/router is a list: its value is a JSON array of entries", "or set one entry at /authority/router[name=...]"}},
		{"wrong key", "/authority/router[id=1]", jsonVal(`{}`), []string{`list router is keyed by "name", not "id"`}},
		{"unknown member", "/authority/router[name=a]", jsonVal(`{"name":"a","bogus":1}`), []string{`unknown element "bogus" in the value under /authority/router[name=a]`, "/authority/router[name=a] has certificate-failure-action, name, peer, peer-validation, peering-common-name"}},
		{"nested unknown member", "/authority", ietfVal(`{"router":[{"name":"a","peer":[{"name":"p","id":"x"}]}]}`), []string{`unknown element "id" in the value under /authority/router[name=a]/peer[name=p]`}},
		{"long member name", "/authority", jsonVal(`{"` + strings.Repeat("k", 5000) + `":1}`), []string{`unknown element "kkkkkkkkkkkkkkkk`, `... (5000 bytes) in the value under /authority`}},
		{"foreign module", "/", ietfVal(`{"openconfig-system:system":{}}`), []string{`module "openconfig-system" is not served`}},
		{"malformed JSON", "/authority/router[name=a]", jsonVal(`{"name":"a",}`), []string{"update /authority/router[name=a]", "the value is not valid JSON", "at byte 13"}},
		{"two JSON values", "/authority/router[name=a]", jsonVal(`{"name":"a"} {}`), []string{"more than one JSON value"}},
		{"unsupported value type", "/authority/router[name=a]/name", &gnmi.TypedValue{Value: &gnmi.TypedValue_AsciiVal{AsciiVal: "a"}}, []string{"a value of type ascii_val is not supported"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := c.Set(ctxT(t), &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, tc.path), Val: tc.val}}})
			if code(err) != "InvalidArgument" {
				t.Fatalf("got %v; want InvalidArgument", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), strings.Repeat("k", 65)) {
				t.Errorf("a long name quoted whole: %.200s", err)
			}
		})
	}
}

// A whole list (a path without the key) takes a JSON array of entries in
// an update, as a Get writes lists: each entry is merged at its key. A
// replace of the whole list is refused pointing at its parent.
func TestSetWholeList(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	provision(t, c)
	before := getJSON(t, c, "/", gnmi.Encoding_JSON_IETF, gnmi.GetRequest_CONFIG)
	// The entries a Get of the list returns, as one array.
	var entries []json.RawMessage
	for _, v := range getJSON(t, c, "/authority/router", gnmi.Encoding_JSON, gnmi.GetRequest_CONFIG) {
		entries = append(entries, json.RawMessage(v))
	}
	all, _ := json.Marshal(entries)
	if _, err := c.Set(ctxT(t), &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/router"), Val: jsonVal(string(all))}}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, getJSON(t, c, "/", gnmi.Encoding_JSON_IETF, gnmi.GetRequest_CONFIG)); diff != "" {
		t.Errorf("running changed (-before +after):\n%s", diff)
	}
	r, err := c.Set(ctxT(t), &gnmi.SetRequest{Prefix: p(t, "/authority"), Update: []*gnmi.Update{{Path: p(t, "/router"), Val: ietfVal(`[{"pki-authority:name":"n1"},{"name":"r2","peer-validation":true}]`)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetResponse()) != 1 || r.GetResponse()[0].GetOp() != gnmi.UpdateResult_UPDATE {
		t.Errorf("results: %v", r.GetResponse())
	}
	run := e.store.Running().GetAuthority()
	if run.GetRouter("n1") == nil || !run.GetRouter("r2").GetPeerValidation() || run.GetRouter("r1") == nil {
		t.Errorf("after the list update: n1 %v, r2 %v, r1 %v", run.GetRouter("n1"), run.GetRouter("r2"), run.GetRouter("r1"))
	}
	for _, tc := range []struct {
		desc string
		req  *gnmi.SetRequest
		want string
	}{
		{"replace", &gnmi.SetRequest{Replace: []*gnmi.Update{{Path: p(t, "/authority/router"), Val: jsonVal(`[]`)}}}, "replace its parent /authority, or each entry /authority/router[name=...]"},
		{"entry without key", &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/router"), Val: jsonVal(`[{"peer-validation":true}]`)}}}, `entry 1 of /authority/router has no key "name"`},
		{"object, not array", &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/router"), Val: jsonVal(`{"name":"x"}`)}}}, "its value is a JSON array of entries"},
		{"null entry", &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/router"), Val: jsonVal(`[null]`)}}}, "a value is required"},
		{"scalar", &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/router"), Val: strVal("x")}}}, "its value is a JSON array of entries"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := c.Set(ctxT(t), tc.req)
			if code(err) != "InvalidArgument" || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
}
