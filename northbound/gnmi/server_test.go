package gnmi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
)

func TestCapabilities(t *testing.T) {
	e := newEnv(t, envOpts{})
	r, err := e.admin().Capabilities(ctxT(t), &gnmi.CapabilityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r.GNMIVersion != "0.10.0" {
		t.Errorf("version %q", r.GNMIVersion)
	}
	if diff := cmp.Diff([]gnmi.Encoding{gnmi.Encoding_JSON, gnmi.Encoding_JSON_IETF, gnmi.Encoding_PROTO}, r.SupportedEncodings); diff != "" {
		t.Errorf("encodings (-want +got):\n%s", diff)
	}
	if m := r.SupportedModels[0]; m.Name != "pki-authority" || m.Version != "2026-12-02" || m.Organization != "pki-agent" {
		t.Errorf("model %v", m)
	}
	if len(r.Extension) != 1 || r.Extension[0].GetCommit() == nil {
		t.Errorf("extensions %v; want the commit extension", r.Extension)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, tc := range []struct {
		desc, user, pw, want string
	}{
		{desc: "no credentials", want: "Unauthenticated"},
		{desc: "wrong password", user: "admin", pw: "nope", want: "Unauthenticated"},
		{desc: "unknown user", user: "mallory", pw: adminPW, want: "Unauthenticated"},
		{desc: "viewer reads", user: "viewer", pw: viewerPW, want: "OK"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := e.client(tc.user, tc.pw).Get(ctxT(t), &gnmi.GetRequest{Type: gnmi.GetRequest_CONFIG})
			if got := code(err); got != tc.want {
				t.Errorf("Get: %v; want %s", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ desc, user, pw string }{{"viewer", "viewer", viewerPW}, {"operator", "op", opPW}} {
		t.Run(tc.desc+" cannot Set", func(t *testing.T) {
			_, err := e.client(tc.user, tc.pw).Set(ctxT(t), &gnmi.SetRequest{Delete: []*gnmi.Path{p(t, "/authority")}})
			if code(err) != "PermissionDenied" || !strings.Contains(err.Error(), "may not change") {
				t.Errorf("Set: %v; want PermissionDenied", err)
			}
		})
	}
}

const caJSON = `{"name":"root","content":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","validation-mode":"warn"}`

func TestSetAndGet(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	ctx := ctxT(t)
	// Subtree (gnmic's default json encoding), then a leaf, then a CRL with
	// a URL key.
	_, err := c.Set(ctx, &gnmi.SetRequest{
		Update: []*gnmi.Update{
			{Path: p(t, "/authority/trusted-ca-certificate[name=root]"), Val: jsonVal(caJSON)},
			{Path: p(t, "/authority/certificate-revocation-list[url=http://x/y.crl]"), Val: ietfVal(`{"pki-authority:url":"http://x/y.crl","polling-interval":12}`)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Set(ctx, &gnmi.SetRequest{
		Prefix:  p(t, "/authority"),
		Replace: []*gnmi.Update{{Path: p(t, "/trusted-ca-certificate[name=root]/validation-mode"), Val: strVal("strict")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Response) != 1 || resp.Response[0].Op != gnmi.UpdateResult_REPLACE {
		t.Errorf("results %v", resp.Response)
	}
	if got := e.store.Running().GetAuthority().GetTrustedCaCertificate("root").GetValidationMode(); got != gen.PkiAuthority_ValidationMode_strict {
		t.Errorf("validation-mode %v", got)
	}

	for _, tc := range []struct {
		desc string
		req  *gnmi.GetRequest
		want map[string]string // path -> value (JSON text or proto text)
	}{
		{
			desc: "leaf json_ietf",
			req:  &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/trusted-ca-certificate[name=root]/validation-mode")}, Encoding: gnmi.Encoding_JSON_IETF, Type: gnmi.GetRequest_CONFIG},
			want: map[string]string{"/authority/trusted-ca-certificate[name=root]/validation-mode": `"strict"`},
		},
		{
			desc: "uint16 leaf with URL key, origin",
			req:  &gnmi.GetRequest{Prefix: &gnmi.Path{Origin: "pki-authority"}, Path: []*gnmi.Path{p(t, "/authority/certificate-revocation-list[url=http://x/y.crl]/polling-interval")}, Encoding: gnmi.Encoding_JSON_IETF},
			want: map[string]string{"/authority/certificate-revocation-list[url=http://x/y.crl]/polling-interval": `12`},
		},
		{
			desc: "wildcard key, proto",
			req:  &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/trusted-ca-certificate[name=*]/name")}, Encoding: gnmi.Encoding_PROTO},
			want: map[string]string{"/authority/trusted-ca-certificate[name=root]/name": `string_val:"root"`},
		},
		{
			desc: "... under list, proto",
			req:  &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/.../polling-interval")}, Encoding: gnmi.Encoding_PROTO, Type: gnmi.GetRequest_CONFIG},
			want: map[string]string{"/authority/certificate-revocation-list[url=http://x/y.crl]/polling-interval": `uint_val:12`},
		},
		{
			desc: "keyless list with *, json",
			req:  &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/*/url")}, Encoding: gnmi.Encoding_JSON},
			want: map[string]string{"/authority/certificate-revocation-list[url=http://x/y.crl]/url": `"http://x/y.crl"`},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r, err := c.Get(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, n := range r.Notification {
				for _, u := range n.Update {
					v := string(u.Val.GetJsonIetfVal()) + string(u.Val.GetJsonVal())
					if v == "" {
						v = strings.ReplaceAll(u.Val.String(), " ", "")
					}
					got[api.PathString(u.Path)] = v
				}
			}
			for k, v := range tc.want {
				tc.want[k] = strings.ReplaceAll(v, " ", "")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	// The root in RFC 7951 has module-qualified top-level names.
	r, err := c.Get(ctx, &gnmi.GetRequest{Encoding: gnmi.Encoding_JSON_IETF, Type: gnmi.GetRequest_CONFIG})
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]map[string]json.RawMessage
	if err := json.Unmarshal(r.Notification[0].Update[0].Val.GetJsonIetfVal(), &root); err != nil {
		t.Fatal(err)
	}
	if _, ok := root["pki-authority:authority"]["trusted-ca-certificate"]; !ok {
		t.Errorf("root JSON %s", r.Notification[0].Update[0].Val.GetJsonIetfVal())
	}

	// Delete, then a Get of it is NotFound.
	if _, err := c.Set(ctx, &gnmi.SetRequest{Delete: []*gnmi.Path{p(t, "/authority/trusted-ca-certificate[name=root]")}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(ctx, &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/trusted-ca-certificate[name=root]")}})
	if code(err) != "NotFound" {
		t.Errorf("Get of deleted entry: %v", err)
	}
	_, err = c.Get(ctx, &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/crl-settings/http-proxy")}})
	if code(err) != "NotFound" {
		t.Errorf("Get of an unset leaf: %v", err)
	}
	// An empty container is no error: no alarm means no update.
	r, err = c.Get(ctx, &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/alarms")}, Encoding: gnmi.Encoding_JSON_IETF})
	if err != nil || len(r.GetNotification()) != 1 || len(r.GetNotification()[0].GetUpdate()) != 0 {
		t.Errorf("Get of empty /alarms: %v %v", r, err)
	}
}

func TestGetErrors(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	for _, tc := range []struct {
		desc string
		req  *gnmi.GetRequest
		want string
		msg  string
	}{
		{"unknown element", &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/nope")}}, "InvalidArgument", `unknown element "nope"`},
		{"bad origin", &gnmi.GetRequest{Path: []*gnmi.Path{{Origin: "cli", Elem: []*gnmi.PathElem{{Name: "authority"}}}}}, "InvalidArgument", `origin "cli"`},
		{"wrong key", &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/router[id=1]")}}, "InvalidArgument", `keyed by "name"`},
		{"ascii", &gnmi.GetRequest{Encoding: gnmi.Encoding_ASCII}, "Unimplemented", "ASCII"},
		{"unknown model", &gnmi.GetRequest{UseModels: []*gnmi.ModelData{{Name: "openconfig-system"}}}, "InvalidArgument", "openconfig-system"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := c.Get(ctxT(t), tc.req)
			if code(err) != tc.want || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v; want %s containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestSetAllOrNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	ctx := ctxT(t)
	if _, err := c.Set(ctx, &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/trusted-ca-certificate[name=keep]"), Val: jsonVal(strings.Replace(caJSON, "root", "keep", 1))}}}); err != nil {
		t.Fatal(err)
	}
	before := e.store.Running()
	for _, tc := range []struct {
		desc string
		req  *gnmi.SetRequest
		want string
		msg  string
	}{
		{
			desc: "second update out of range",
			req: &gnmi.SetRequest{
				Delete: []*gnmi.Path{p(t, "/authority/trusted-ca-certificate[name=keep]")},
				Update: []*gnmi.Update{
					{Path: p(t, "/authority/certificate-revocation-list[url=http://a/b.crl]"), Val: jsonVal(`{"url":"http://a/b.crl"}`)},
					{Path: p(t, "/authority/certificate-revocation-list[url=http://a/b.crl]/polling-interval"), Val: &gnmi.TypedValue{Value: &gnmi.TypedValue_UintVal{UintVal: 500}}},
				},
			},
			want: "InvalidArgument", msg: "polling-interval",
		},
		{
			desc: "wrong type",
			req:  &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/router[name=r1]/peer-validation"), Val: strVal("yes")}}},
			want: "InvalidArgument", msg: "peer-validation",
		},
		{
			desc: "state is read-only",
			req:  &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/alarms/alarm[id=x]/text"), Val: strVal("x")}}},
			want: "InvalidArgument", msg: "config false",
		},
		{
			desc: "wildcard in Set",
			req:  &gnmi.SetRequest{Delete: []*gnmi.Path{p(t, "/authority/trusted-ca-certificate[name=*]")}},
			want: "InvalidArgument", msg: "wildcards are not allowed",
		},
		{
			desc: "key mismatch",
			req:  &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/trusted-ca-certificate[name=other]"), Val: jsonVal(caJSON)}}},
			want: "InvalidArgument", msg: "does not match",
		},
		{
			desc: "bad JSON",
			req:  &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/trusted-ca-certificate[name=root]"), Val: jsonVal(`{"name":`)}}},
			want: "InvalidArgument", msg: "trusted-ca-certificate",
		},
		{
			desc: "union_replace",
			req:  &gnmi.SetRequest{UnionReplace: []*gnmi.Update{{Path: p(t, "/authority"), Val: jsonVal(`{}`)}}},
			want: "Unimplemented", msg: "union_replace",
		},
		{
			desc: "engine refuses",
			req: &gnmi.SetRequest{
				Delete: []*gnmi.Path{p(t, "/authority/trusted-ca-certificate[name=keep]")},
				Update: []*gnmi.Update{{Path: p(t, "/authority/trusted-ca-certificate[name=refuse]"), Val: jsonVal(strings.Replace(caJSON, "root", "refuse", 1))}},
			},
			want: "Aborted", msg: "engine refuses",
		},
		{
			desc: "too many ops",
			req:  &gnmi.SetRequest{Delete: make([]*gnmi.Path, DefaultLimits.MaxSetOps+1)},
			want: "ResourceExhausted", msg: "at most 10000",
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := c.Set(ctx, tc.req)
			if code(err) != tc.want || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v; want %s containing %q", err, tc.want, tc.msg)
			}
			if e.store.Running() != before {
				t.Error("a failed Set changed running")
			}
		})
	}
}

func TestSetLockedByNetconf(t *testing.T) {
	e := newEnv(t, envOpts{})
	if err := e.store.Lock(agent.Running, api.NetconfOwner(7)); err != nil {
		t.Fatal(err)
	}
	_, err := e.admin().Set(ctxT(t), &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/crl-settings/discover-from-certificates"), Val: &gnmi.TypedValue{Value: &gnmi.TypedValue_BoolVal{BoolVal: false}}}}})
	if code(err) != "FailedPrecondition" || !strings.Contains(err.Error(), "netconf session 7") {
		t.Errorf("Set while locked: %v", err)
	}
}

func commitExt(id string, action any) []*gnmi_ext.Extension {
	c := &gnmi_ext.Commit{Id: id}
	switch a := action.(type) {
	case time.Duration:
		c.Action = &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{RollbackDuration: durationpb.New(a)}}
	case string:
		switch a {
		case "confirm":
			c.Action = &gnmi_ext.Commit_Confirm{Confirm: &gnmi_ext.CommitConfirm{}}
		case "cancel":
			c.Action = &gnmi_ext.Commit_Cancel{Cancel: &gnmi_ext.CommitCancel{}}
		}
	case [1]time.Duration:
		c.Action = &gnmi_ext.Commit_SetRollbackDuration{SetRollbackDuration: &gnmi_ext.CommitSetRollbackDuration{RollbackDuration: durationpb.New(a[0])}}
	}
	return []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: c}}}
}

// setCA sends a Set with the extensions ext that adds the trusted CA name
// (caJSON), or no update when name is "".
func setCA(t *testing.T, ctx context.Context, c gnmi.GNMIClient, name string, ext []*gnmi_ext.Extension) error {
	req := &gnmi.SetRequest{Extension: ext}
	if name != "" {
		req.Update = []*gnmi.Update{{Path: p(t, "/authority/trusted-ca-certificate[name="+name+"]"), Val: jsonVal(strings.Replace(caJSON, "root", name, 1))}}
	}
	_, err := c.Set(ctx, req)
	return err
}

func TestCommitConfirmed(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	ctx := ctxT(t)
	set := func(name string, ext []*gnmi_ext.Extension) error { return setCA(t, ctx, c, name, ext) }
	has := func(name string) bool { return e.store.Running().GetAuthority().GetTrustedCaCertificate(name) != nil }

	// Commit, confirm: stays.
	if err := set("a", commitExt("c1", time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := set("b", nil); code(err) != "FailedPrecondition" {
		t.Errorf("plain Set while a commit is pending: %v", err)
	}
	if err := set("b", commitExt("c2", time.Minute)); code(err) != "FailedPrecondition" {
		t.Errorf("second commit while one is pending: %v", err)
	}
	if err := set("", commitExt("wrong", "confirm")); code(err) != "InvalidArgument" || strings.Contains(err.Error(), "persist") || !strings.Contains(err.Error(), "commit wrong: this is not the id of the pending confirmed commit") {
		t.Errorf("confirm with wrong id: %v", err)
	}
	if err := set("", commitExt("c1", [1]time.Duration{0})); code(err) != "InvalidArgument" {
		t.Errorf("set_rollback_duration 0: %v", err)
	}
	if err := set("", commitExt("c1", [1]time.Duration{2 * time.Minute})); err != nil {
		t.Errorf("set_rollback_duration: %v", err)
	}
	if err := set("", commitExt("c1", "confirm")); err != nil {
		t.Fatal(err)
	}
	if !has("a") {
		t.Error("confirmed commit lost")
	}
	if err := set("", commitExt("c1", "confirm")); code(err) != "FailedPrecondition" {
		t.Errorf("confirm with nothing pending: %v", err)
	}

	// Commit, cancel: rolled back.
	if err := set("b", commitExt("c3", time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := set("", commitExt("c3", "cancel")); err != nil {
		t.Fatal(err)
	}
	if has("b") {
		t.Error("cancelled commit kept")
	}

	// Commit with a short rollback duration and let it lapse.
	if err := set("c", commitExt("c4", 200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if !has("c") {
		t.Fatal("confirmed commit not applied")
	}
	deadline := time.Now().Add(5 * time.Second)
	for has("c") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if has("c") || !has("a") {
		t.Errorf("after the rollback duration: c present %v, a present %v; want false, true", has("c"), has("a"))
	}
	if err := set("d", nil); err != nil {
		t.Errorf("Set after the rollback: %v", err)
	}
}

// TestFailedCommitLeavesConfirmedCommitPending: over gNMI too, a commit
// that fails changes nothing about the confirmed commit: a cancel whose
// rollback the engine refuses leaves it pending (and confirmable), and a
// confirmed Set that the engine refuses starts none.
func TestFailedCommitLeavesConfirmedCommitPending(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	ctx := ctxT(t)
	set := func(name string, ext []*gnmi_ext.Extension) error { return setCA(t, ctx, c, name, ext) }
	if err := set("sticky", commitExt("c1", time.Minute)); err != nil {
		t.Fatal(err)
	}
	before, _ := e.store.Pending()
	if err := set("", commitExt("c1", "cancel")); code(err) != "Aborted" {
		t.Fatalf("cancel whose rollback the engine refuses: %v", err)
	}
	if after, ok := e.store.Pending(); !ok || after != before {
		t.Fatalf("a failed cancel changed the pending commit: %+v -> %+v (%v)", before, after, ok)
	}
	if err := set("refuse", commitExt("c9", time.Minute)); code(err) != "FailedPrecondition" {
		t.Fatalf("confirmed Set while one is pending: %v", err)
	}
	if err := set("", commitExt("c1", "confirm")); err != nil {
		t.Fatalf("confirm after the failed cancel: %v", err)
	}
	if e.store.Running().GetAuthority().GetTrustedCaCertificate("sticky") == nil {
		t.Fatal("the confirmed commit is gone")
	}
	if err := set("refuse", commitExt("c2", time.Minute)); code(err) != "Aborted" {
		t.Fatalf("confirmed Set the engine refuses: %v", err)
	}
	if p, ok := e.store.Pending(); ok {
		t.Fatalf("a confirmed Set that failed left a pending commit: %+v", p)
	}
	if err := set("", commitExt("c2", "confirm")); code(err) != "FailedPrecondition" {
		t.Fatalf("confirm of a commit that failed: %v", err)
	}
}
