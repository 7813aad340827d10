package pki

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/pki/crl"
)

// crlServer is a real HTTP server on 127.0.0.1 serving what the test sets.
type crlServer struct {
	srv    *httptest.Server
	url    string
	mu     sync.Mutex
	body   []byte
	status int
	hang   bool
}

func newCRLServer(t *testing.T) *crlServer {
	c := &crlServer{status: http.StatusNotFound, body: []byte("not here")}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		body, status, hang := c.body, c.status, c.hang
		c.mu.Unlock()
		if hang {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(c.srv.Close)
	c.url = c.srv.URL + "/issuing.crl"
	return c
}

func (c *crlServer) serve(status int, body []byte) {
	c.mu.Lock()
	c.status, c.body, c.hang = status, body, false
	c.mu.Unlock()
}

func (c *crlServer) stall() {
	c.mu.Lock()
	c.hang = true
	c.mu.Unlock()
}

// run starts the engine's loops (CRL polling) until the test ends.
func (f *fixture) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.engine.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Run starts the CRL manager on its goroutine: wait for it, so that a
	// refresh right after run is not refused as "not running". A refresh
	// of a source nobody configured has no effect.
	eventually(t, "CRL manager running", func() bool {
		return !errors.Is(f.engine.revocation.m.Refresh(ctx, "none:"), crl.ErrNotRunning)
	})
}

// merge commits value (JSON IETF) at /authority/ELEMS.
func (f *fixture) merge(t *testing.T, value string, elems ...*gnmi.PathElem) error {
	t.Helper()
	tx := f.store.Begin(agent.Running)
	p := &gnmi.Path{Elem: append([]*gnmi.PathElem{{Name: "authority"}}, elems...)}
	if err := tx.Apply(agent.Edit{Op: agent.OpMerge, Path: p, Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: []byte(value)}}}); err != nil {
		return err
	}
	_, err := f.store.Commit(context.Background(), tx, agent.CommitOptions{User: "admin"})
	return err
}

func crlEntry(url string) *gnmi.PathElem {
	return &gnmi.PathElem{Name: "certificate-revocation-list", Key: map[string]string{"url": url}}
}

// eventually polls cond for up to a second of real time: the CRL manager
// delivers on its own goroutine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// A generous bound: under -race on a loaded 2-core CI machine the
	// engine's event handling can take far longer than it does here.
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (f *fixture) state(t *testing.T) *gen.Device {
	t.Helper()
	st, err := f.store.State()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *fixture) crlState(t *testing.T, url string) *gen.PkiAuthority_Authority_CertificateRevocationList_State {
	return f.state(t).GetAuthority().GetCertificateRevocationList(url).GetState()
}

// notifications drains the bus and returns the notifications named name,
// each as leaf name -> value.
func (f *fixture) notifications(name string) []map[string]any {
	var out []map[string]any
	for {
		select {
		case ev := <-f.sub.C:
			if ev.Kind != api.EventNotification || ev.Notification.Name != name {
				continue
			}
			m := map[string]any{}
			for _, l := range ev.Notification.Leaves {
				m[l.Name] = l.Value
			}
			out = append(out, m)
		default:
			return out
		}
	}
}

func alarmActions(ns []map[string]any, id string) []string {
	var out []string
	for _, n := range ns {
		if n["id"] == id {
			out = append(out, n["action"].(string)+" "+n["severity"].(string))
		}
	}
	return out
}

func (f *fixture) auditLines(t *testing.T, typ string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["type"] == typ {
			out = append(out, ev)
		}
	}
	return out
}

func mustCRL(t *testing.T, ca *testpki.Cert, o testpki.CRLOptions) []byte {
	t.Helper()
	if o.ThisUpdate.IsZero() {
		o.ThisUpdate = t0.Add(-time.Hour)
	}
	if o.NextUpdate.IsZero() {
		o.NextUpdate = t0.Add(7 * 24 * time.Hour)
	}
	return testpki.Must(testpki.CRLWith(ca, o))
}

// TestCRLUnreachableThenRecovered follows one configured source through
// the engine: a 404 raises crl-unreachable once, the retry after the
// backoff (fake clock) succeeds and clears it once; counters, per-URL
// state, the crl-update notification and the system.crl_update audit
// record say what happened.
func TestCRLUnreachableThenRecovered(t *testing.T) {
	f := newFixture(t)
	root := testpki.Must(f.gen.Root(testpki.Options{CN: "CRL Root"}))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(root)), "strict"); err != nil {
		t.Fatal(err)
	}
	srv := newCRLServer(t)
	f.run(t)
	if err := f.merge(t, `{"polling-interval": 24, "backoff-interval": 30}`, crlEntry(srv.url)); err != nil {
		t.Fatal(err)
	}
	id := "crl-unreachable:" + srv.url
	eventually(t, "crl-unreachable raised", func() bool { return f.alarm(id) != nil })
	a := f.alarm(id)
	if a.GetSeverity() != gen.PkiAuthority_Severity_major || a.GetCategory() != gen.PkiAuthority_AlarmCategory_crl_unreachable || !strings.Contains(a.GetText(), "404") {
		t.Fatalf("alarm %v %v %q", a.GetSeverity(), a.GetCategory(), a.GetText())
	}
	// The state and counters are published beside the alarm, not before it.
	eventually(t, "state after 404", func() bool { return f.crlState(t, srv.url).GetLastError() != "" })
	eventually(t, "crl-fetch failure counted", func() bool {
		return f.state(t).GetStats().GetSecurity().GetCrlFetch().GetFailure() == 1
	})
	st := f.crlState(t, srv.url)
	if st.GetConsecutiveFailures() != 1 || !strings.Contains(st.GetLastError(), "HTTP status 404") || st.GetNextAttempt() != t0.Add(30*time.Second).Format(timeFormat) {
		t.Fatalf("state after 404: %+v", st)
	}
	if s := f.state(t).GetStats().GetSecurity(); s.GetCrlFetch().GetFailure() != 1 || s.GetCrlFetch().GetSuccess() != 0 {
		t.Fatalf("crl-fetch %+v", s.GetCrlFetch())
	}

	// The retry waits for the backoff on the injected clock.
	f.clock.Advance(29 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if got := f.crlState(t, srv.url).GetConsecutiveFailures(); got != 1 {
		t.Fatalf("retried before the backoff: %d failures", got)
	}
	der := mustCRL(t, root, testpki.CRLOptions{Revoked: []*big.Int{big.NewInt(7), big.NewInt(9)}, Number: 4})
	srv.serve(http.StatusOK, der)
	f.clock.Advance(time.Second)
	eventually(t, "crl-unreachable cleared", func() bool { return f.alarm(id) == nil })
	eventually(t, "state after success", func() bool { return f.crlState(t, srv.url).GetEntries() == 2 })
	eventually(t, "ingestion counted", func() bool {
		return f.state(t).GetStats().GetSecurity().GetCrlIngestion().GetSuccess() == 1
	})
	st = f.crlState(t, srv.url)
	if st.GetIssuer() != "CN=CRL Root,O=pki-agent tests" || st.GetSizeBytes() != uint64(len(der)) || st.GetLastError() != "" || st.GetConsecutiveFailures() != 0 ||
		st.GetThisUpdate() != t0.Add(-time.Hour).Format(timeFormat) || st.GetNextUpdate() != t0.Add(7*24*time.Hour).Format(timeFormat) {
		t.Fatalf("state after success: %+v", st)
	}
	sec := f.state(t).GetStats().GetSecurity()
	if sec.GetCrlFetch().GetSuccess() != 1 || sec.GetCrlFetch().GetFailure() != 1 || sec.GetCrlIngestion().GetSuccess() != 1 || sec.GetCrlIngestion().GetFailure() != 0 {
		t.Fatalf("counters fetch %+v ingestion %+v", sec.GetCrlFetch(), sec.GetCrlIngestion())
	}
	f.engine.revocation.m.Stop() // flush queued events
	if got := strings.Join(alarmActions(f.notifications("alarm-notification"), id), ","); got != "raised major,cleared major" {
		t.Fatalf("alarm notifications: %s", got)
	}
	// Drained above; read the crl-update notifications from a fresh look
	// at the audit log instead, and the bus for the last one.
	recs := f.auditLines(t, "system.crl_update")
	if len(recs) != 2 {
		t.Fatalf("%d crl_update audit records", len(recs))
	}
	want := map[string]any{
		"forced": false, "last_updated": "Nov 23 11:00:00 2026 GMT", "next_update": "Nov 30 12:00:00 2026 GMT",
		"crl_url": srv.url, "size": float64(len(der)), "total_entries": float64(2), "added_entries": float64(2),
		"removed_entries": float64(0), "success": true, "certificate_authority": "/O=pki-agent tests/CN=CRL Root",
	}
	got := recs[1]["detail"].(map[string]any)
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("audit detail %s = %v, want %v (%v)", k, got[k], v, got)
		}
	}
	if recs[1]["description"] != "Updated CRL for issuer: CN=CRL Root,O=pki-agent tests" || recs[1]["user"] != "system" {
		t.Fatalf("audit record %v", recs[1])
	}
	if d := recs[0]["detail"].(map[string]any); d["success"] != false || !strings.Contains(d["error"].(string), "404") {
		t.Fatalf("failed attempt audit %v", d)
	}
}

// TestCRLUpdateNotification checks the crl-update leaves of the YANG.
func TestCRLUpdateNotification(t *testing.T) {
	f := newFixture(t)
	root := testpki.Must(f.gen.Root(testpki.Options{CN: "Notify Root"}))
	f.setTrusted(t, "corp", string(testpki.PEM(root)), "strict")
	srv := newCRLServer(t)
	der := mustCRL(t, root, testpki.CRLOptions{Revoked: []*big.Int{big.NewInt(1)}, Number: 1})
	srv.serve(http.StatusOK, der)
	f.run(t)
	if err := f.merge(t, `{}`, crlEntry(srv.url)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first fetch", func() bool { return f.crlState(t, srv.url).GetEntries() == 1 })
	out, err := f.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{URL: srv.url})
	if err != nil || len(out.Result) != 1 || !out.Result[0].Success || !strings.Contains(out.Result[0].Message, "1 entries") {
		t.Fatalf("refresh: %+v %v", out, err)
	}
	f.engine.revocation.m.Stop()
	ns := f.notifications("crl-update")
	if len(ns) != 2 {
		t.Fatalf("%d crl-update notifications", len(ns))
	}
	want := map[string]any{
		"url": srv.url, "issuer": "CN=Notify Root,O=pki-agent tests", "forced": true, "success": true,
		"size": uint64(len(der)), "total-entries": uint64(1), "added-entries": uint64(0), "removed-entries": uint64(0),
		"this-update": "2026-11-23T11:00:00Z", "next-update": "2026-11-30T12:00:00Z",
	}
	for k, v := range want {
		if ns[1][k] != v {
			t.Fatalf("leaf %s = %#v, want %#v", k, ns[1][k], v)
		}
	}
	if ns[0]["forced"] != false || ns[0]["added-entries"] != uint64(1) {
		t.Fatalf("first notification %v", ns[0])
	}
	recs := f.auditLines(t, "system.crl_update")
	if len(recs) != 2 || recs[1]["detail"].(map[string]any)["forced"] != true {
		t.Fatalf("audit %v", recs)
	}
	if r := f.auditLines(t, "system.refresh_crl"); len(r) != 1 || r[0]["user"] != "admin" {
		t.Fatalf("refresh audit %v", r)
	}
}

// TestCRLRefusedBodies: every bad answer is an ingestion or fetch failure
// with the reason in last-error, the last good list is kept, and
// crl-unreachable is raised.
func TestCRLRefusedBodies(t *testing.T) {
	g := testpki.New(t0)
	root := testpki.Must(g.Root(testpki.Options{CN: "Refusing Root"}))
	impostor := testpki.Must(g.Root(testpki.Options{CN: "Refusing Root"}))
	good := mustCRL(t, root, testpki.CRLOptions{Revoked: []*big.Int{big.NewInt(5)}, Number: 10})
	for _, tc := range []struct {
		desc      string
		serve     func(*crlServer)
		fetchFail bool
		words     string
	}{
		{desc: "404", serve: func(s *crlServer) { s.serve(404, nil) }, fetchFail: true, words: "HTTP status 404"},
		{desc: "timeout", serve: func(s *crlServer) { s.stall() }, fetchFail: true, words: "timed out"},
		{desc: "oversize body", serve: func(s *crlServer) { s.serve(200, make([]byte, 64<<10)) }, fetchFail: true, words: "larger than the size limit"},
		{desc: "garbage body", serve: func(s *crlServer) { s.serve(200, []byte("<html>maintenance</html>")) }, words: "not a CRL"},
		{desc: "wrong signer", serve: func(s *crlServer) {
			s.serve(200, mustCRL(t, impostor, testpki.CRLOptions{Number: 11}))
		}, words: "signature does not verify"},
		{desc: "lower CRLNumber", serve: func(s *crlServer) {
			s.serve(200, mustCRL(t, root, testpki.CRLOptions{Number: 9}))
		}, words: "CRLNumber 9 is lower than the 10 held"},
		{desc: "critical delta CRL indicator", serve: func(s *crlServer) {
			s.serve(200, mustCRL(t, root, testpki.CRLOptions{Number: 12, ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: []byte{2, 1, 10}}}}))
		}, words: "extension this agent does not handle"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.CRLFetch = crl.FetchOptions{Timeout: 300 * time.Millisecond, MaxSize: 32 << 10} })
			f.setTrusted(t, "corp", string(testpki.PEM(root)), "strict")
			srv := newCRLServer(t)
			srv.serve(200, good)
			f.run(t)
			if err := f.merge(t, `{}`, crlEntry(srv.url)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "good CRL", func() bool { return f.crlState(t, srv.url).GetEntries() == 1 })
			tc.serve(srv)
			out, err := f.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{})
			if err != nil || len(out.Result) != 1 || out.Result[0].Success || !strings.Contains(out.Result[0].Message, tc.words) {
				t.Fatalf("refresh %+v %v, want failure with %q", out, err, tc.words)
			}
			eventually(t, "state", func() bool { return f.crlState(t, srv.url).GetConsecutiveFailures() == 1 })
			st := f.crlState(t, srv.url)
			if !strings.Contains(st.GetLastError(), tc.words) || st.GetEntries() != 1 {
				t.Fatalf("state %+v", st)
			}
			if !f.engine.cfg.Revocation.IsRevoked(root.Cert.RawSubject, big.NewInt(5)) {
				t.Fatal("the last good list was dropped")
			}
			sec := f.state(t).GetStats().GetSecurity()
			wantFetch, wantIngest := uint64(0), uint64(1)
			if tc.fetchFail {
				wantFetch, wantIngest = 1, 0
			}
			if sec.GetCrlFetch().GetFailure() != wantFetch || sec.GetCrlIngestion().GetFailure() != wantIngest || sec.GetCrlIngestion().GetSuccess() != 1 {
				t.Fatalf("counters fetch %+v ingestion %+v", sec.GetCrlFetch(), sec.GetCrlIngestion())
			}
			eventually(t, "alarm", func() bool { return f.alarm("crl-unreachable:"+srv.url) != nil })
		})
	}
}

// forwardProxy is a real plain-HTTP forward proxy on 127.0.0.1.
type forwardProxy struct {
	srv  *httptest.Server
	hits atomic.Int32
	last atomic.Value // string
}

func newForwardProxy(t *testing.T) *forwardProxy {
	p := &forwardProxy{}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		p.hits.Add(1)
		p.last.Store(r.URL.String())
		out, _ := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func TestCRLThroughHTTPProxy(t *testing.T) {
	f := newFixture(t)
	root := testpki.Must(f.gen.Root(testpki.Options{CN: "Proxy Root"}))
	f.setTrusted(t, "corp", string(testpki.PEM(root)), "strict")
	srv := newCRLServer(t)
	srv.serve(http.StatusOK, mustCRL(t, root, testpki.CRLOptions{Revoked: []*big.Int{big.NewInt(3)}, Number: 1}))
	p := newForwardProxy(t)
	f.run(t)
	if err := f.merge(t, `{"http-proxy": "`+p.srv.URL+`"}`, &gnmi.PathElem{Name: "crl-settings"}); err != nil {
		t.Fatal(err)
	}
	if err := f.merge(t, `{}`, crlEntry(srv.url)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "fetched", func() bool { return f.crlState(t, srv.url).GetEntries() == 1 })
	if p.hits.Load() != 1 || p.last.Load() != srv.url {
		t.Fatalf("proxy saw %d requests, last %v", p.hits.Load(), p.last.Load())
	}
	// A proxy that is down is a fetch failure naming it.
	p.srv.Close()
	out, _ := f.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{URL: srv.url})
	if len(out.Result) != 1 || out.Result[0].Success || !strings.Contains(out.Result[0].Message, "could not be fetched") {
		t.Fatalf("refresh through a dead proxy: %+v", out)
	}
}

func TestCRLStaleAlarm(t *testing.T) {
	f := newFixture(t)
	root := testpki.Must(f.gen.Root(testpki.Options{CN: "Stale Root"}))
	f.setTrusted(t, "corp", string(testpki.PEM(root)), "strict")
	srv := newCRLServer(t)
	srv.serve(http.StatusOK, mustCRL(t, root, testpki.CRLOptions{Revoked: []*big.Int{big.NewInt(3)}, Number: 1, NextUpdate: t0.Add(time.Hour)}))
	f.run(t)
	f.merge(t, `{}`, crlEntry(srv.url))
	eventually(t, "fetched", func() bool { return f.crlState(t, srv.url).GetEntries() == 1 })
	id := "crl-stale:" + srv.url
	if f.alarm(id) != nil {
		t.Fatal("fresh CRL is stale")
	}
	// nextUpdate passes and the server still has the same list: stale,
	// raised once, and the list is kept.
	f.clock.Advance(time.Hour)
	eventually(t, "crl-stale raised", func() bool { return f.alarm(id) != nil })
	f.clock.Advance(time.Hour)
	eventually(t, "second poll", func() bool { return f.crlState(t, srv.url).GetLastSuccess() == t0.Add(2*time.Hour).Format(timeFormat) })
	if !f.engine.cfg.Revocation.IsRevoked(root.Cert.RawSubject, big.NewInt(3)) {
		t.Fatal("stale list dropped")
	}
	srv.serve(http.StatusOK, mustCRL(t, root, testpki.CRLOptions{Number: 2, ThisUpdate: t0.Add(2 * time.Hour), NextUpdate: t0.Add(48 * time.Hour)}))
	f.clock.Advance(time.Hour)
	eventually(t, "crl-stale cleared", func() bool { return f.alarm(id) == nil })
	f.engine.revocation.m.Stop()
	if got := strings.Join(alarmActions(f.notifications("alarm-notification"), id), ","); got != "raised major,cleared major" {
		t.Fatalf("stale notifications: %s", got)
	}
}

// provisionWithCDP runs key -> CSR -> import for a certificate that names
// cdp as its CRL distribution point, issued by issuer (under root).
func provisionWithCDP(t *testing.T, f *fixture, issuer *testpki.Cert, name, cdp string) *testpki.Cert {
	t.Helper()
	ctx := context.Background()
	if _, err := f.engine.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: name, Algorithm: "ecc", ECCCurve: "secp256r1", KeyStorage: "file"}); err != nil {
		t.Fatal(err)
	}
	key, _ := f.keys.Signer(ctx, name)
	leaf := testpki.Must(f.gen.Issue(issuer, testpki.Options{CN: name + ".example", Key: key, CRLDistributionPoints: []string{cdp}}))
	if _, err := f.engine.ImportCertificate(ctx, admin, api.ImportCertificateInput{Name: name, Certificate: string(testpki.PEM(leaf, issuer))}); err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestManagedCertificateRevokedByNewCRL: the CRL URL is learned from the
// imported certificate's distribution point (learned-source state), and
// when the issuing CA's next CRL lists the certificate it turns revoked
// with a critical alarm within a second. After a restart, before any
// fetch, the master list on disk keeps it revoked.
func TestManagedCertificateRevokedByNewCRL(t *testing.T) {
	dir := t.TempDir()
	f := newFixtureIn(t, dir, clock.NewFake(t0))
	h := testpki.Must(f.gen.Hierarchy(2))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	srv := newCRLServer(t)
	srv.serve(http.StatusOK, mustCRL(t, h[1], testpki.CRLOptions{Number: 1}))
	f.run(t)
	leaf := provisionWithCDP(t, f, h[1], "router", srv.url)

	eventually(t, "learned source fetched", func() bool {
		ls := f.state(t).GetAuthority().GetCrlSettings().GetLearnedSource(srv.url)
		return ls.GetState().GetLastSuccess() != ""
	})
	ls := f.state(t).GetAuthority().GetCrlSettings().GetLearnedSource(srv.url)
	if strings.Join(ls.LearnedFrom, ",") != "certificate router" || ls.GetState().GetIssuer() != "CN=testpki tier 2,O=pki-agent tests" {
		t.Fatalf("learned source %v %+v", ls.LearnedFrom, ls.GetState())
	}
	if f.state(t).GetCertificates().GetCertificate("router").GetStatus() != gen.PkiAuthority_CertificateStatus_valid {
		t.Fatal("not valid before revocation")
	}

	srv.serve(http.StatusOK, mustCRL(t, h[1], testpki.CRLOptions{Number: 2, Revoked: []*big.Int{leaf.Cert.SerialNumber}}))
	out, err := f.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{})
	if err != nil || len(out.Result) != 1 || !out.Result[0].Success || out.Result[0].URL != srv.url {
		t.Fatalf("refresh all: %+v %v", out, err)
	}
	eventually(t, "certificate revoked", func() bool {
		return f.state(t).GetCertificates().GetCertificate("router").GetStatus() == gen.PkiAuthority_CertificateStatus_revoked
	})
	a := f.alarm("certificate:router")
	if a.GetSeverity() != gen.PkiAuthority_Severity_critical || a.GetCategory() != gen.PkiAuthority_AlarmCategory_certificate_revoked {
		t.Fatalf("alarm %v %v", a.GetSeverity(), a.GetCategory())
	}
	if f.state(t).GetStats().GetSecurity().GetCertificate().GetRevoked() != 1 {
		t.Fatal("certificate revoked counter")
	}
	// Import check 3 refuses it too.
	if _, err := f.engine.ImportCertificate(context.Background(), admin, api.ImportCertificateInput{Name: "router", Certificate: string(testpki.PEM(leaf, h[1]))}); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("re-import of a revoked certificate: %v", err)
	}
	f.engine.revocation.m.Stop()
	f.close()

	// Restart on the same state directory: revoked before any fetch.
	f2 := newFixtureIn(t, dir, clock.NewFake(t0.Add(time.Minute)))
	if err := f2.engine.Load(context.Background(), f2.store.Running()); err != nil {
		t.Fatal(err)
	}
	if got := f2.state(t).GetCertificates().GetCertificate("router").GetStatus(); got != gen.PkiAuthority_CertificateStatus_revoked {
		t.Fatalf("after restart: %v", got)
	}
	if f2.alarm("certificate:router") == nil {
		t.Fatal("no alarm after restart")
	}
}

func TestRefreshCRLErrors(t *testing.T) {
	f := newFixture(t)
	_, err := f.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{URL: "http://192.0.2.1/nope.crl"})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "neither a configured certificate-revocation-list nor a learned CRL source") {
		t.Fatalf("unknown url: %v", err)
	}
	out, err := f.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{})
	if err != nil || len(out.Result) != 0 {
		t.Fatalf("refresh with no sources: %+v %v", out, err)
	}
	// A CRL URL the fetcher cannot use is refused at commit.
	if err := f.merge(t, `{}`, crlEntry("ldap://ldap.example/cn=CA")); err == nil {
		t.Fatal("ldap CRL URL committed")
	}
	_ = x509.KeyUsageCRLSign
}
