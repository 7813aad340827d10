package crl

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

// crlServer serves whatever body/status the test sets and records the
// conditional headers it received.
type crlServer struct {
	mu       sync.Mutex
	body     []byte
	status   int
	etag     string
	hits     int
	lastINM  string
	url      string
	requests chan struct{}
}

func newCRLServer(t *testing.T, body []byte) *crlServer {
	c := &crlServer{body: body, status: http.StatusOK, requests: make(chan struct{}, 100)}
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits++
		c.lastINM = r.Header.Get("If-None-Match")
		body, status, etag := c.body, c.status, c.etag
		c.mu.Unlock()
		if etag != "" && r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		w.WriteHeader(status)
		w.Write(body)
	})
	c.url = s.URL + "/ca.crl"
	return c
}

func (c *crlServer) set(body []byte, status int, etag string) {
	c.mu.Lock()
	c.body, c.status, c.etag = body, status, etag
	c.mu.Unlock()
}

func (c *crlServer) stats() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.lastINM
}

// harness runs a Manager on a fake clock and records its events.
type harness struct {
	t       *testing.T
	clk     *clock.Fake
	m       *Manager
	updates chan *Update
	mu      sync.Mutex
	alarms  []AlarmChange
	changed []Changed
	removed []string
}

func startHarness(t *testing.T, dir string, cas ...*testpki.Cert) *harness {
	t.Helper()
	return startResumed(t, dir, Resume{}, cas...)
}

// startResumed is startHarness for a manager that takes up r.
func startResumed(t *testing.T, dir string, r Resume, cas ...*testpki.Cert) *harness {
	t.Helper()
	h := &harness{t: t, clk: clock.NewFake(t0), updates: make(chan *Update, 100)}
	m, err := New(Config{
		Dir:    dir,
		Resume: r,
		Clock:  h.clk,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Fetch:  FetchOptions{Timeout: 5 * time.Second},
		OnEvent: func(e Event) {
			h.mu.Lock()
			defer h.mu.Unlock()
			switch e := e.(type) {
			case *Update:
				h.updates <- e
			case *AlarmChange:
				h.alarms = append(h.alarms, *e)
			case *Changed:
				h.changed = append(h.changed, *e)
			case *SourceRemoved:
				h.removed = append(h.removed, e.URL)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	m.SetTrustedCAs(caPool(cas...))
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return h
}

func (h *harness) update() *Update {
	h.t.Helper()
	select {
	case u := <-h.updates:
		return u
	case <-time.After(10 * time.Second):
		h.t.Fatal("no CRL update event within 10 s")
		return nil
	}
}

// advance moves the fake clock and waits for the attempt it triggers.
func (h *harness) advance(d time.Duration) *Update {
	h.t.Helper()
	h.clk.Advance(d)
	return h.update()
}

func (h *harness) alarmLog() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, a := range h.alarms {
		verb := "cleared"
		if a.Raised {
			verb = "raised"
		}
		out = append(out, a.Category+" "+verb)
	}
	return out
}

func (h *harness) state(url string) SourceState {
	for _, s := range h.m.States() {
		if s.URL == url {
			return s
		}
	}
	h.t.Fatalf("no state for %s", url)
	return SourceState{}
}

func equalLog(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("alarms %q, want %q", got, want)
	}
}

func TestManagerSuccess(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "success CA")
	der := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(10, 20, 30), Number: 3})
	srv := newCRLServer(t, testpki.CRLPEM(der))
	h := startHarness(t, t.TempDir(), ca)
	if err := h.m.SetSources([]Source{{URL: srv.url, PollingInterval: 24 * time.Hour, Learned: true}}); err != nil {
		t.Fatal(err)
	}
	u := h.update()
	if !u.Success || u.Fetch != Succeeded || u.Ingestion != Succeeded || u.Forced {
		t.Fatalf("update %+v", u)
	}
	if !h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(20)) || h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(21)) {
		t.Fatal("index does not answer from the new CRL")
	}
	d := u.Detail()
	js, _ := json.Marshal(d)
	want := UpdateDetail{
		Forced: false, LastUpdated: "Mar  1 11:00:00 2026 GMT", NextUpdate: "Mar  8 12:00:00 2026 GMT",
		CRLURL: srv.url, Size: int64(len(der)), TotalEntries: 3, AddedEntries: 3, RemovedEntries: 0,
		Success: true, CertificateAuthority: "/O=pki-agent tests/CN=success CA",
	}
	if d != want {
		t.Fatalf("audit detail\n got %s\nwant %+v", js, want)
	}
	st := h.state(srv.url)
	if !st.Learned || st.Entries != 3 || st.SizeBytes != int64(len(der)) || st.Number != "3" ||
		!st.LastSuccess.Equal(t0) || !st.NextAttempt.Equal(t0.Add(24*time.Hour)) || st.ConsecutiveFailures != 0 || st.LastError != "" {
		t.Fatalf("state %+v", st)
	}
	if s := h.m.Stats(); s != (Stats{FetchSuccess: 1, IngestionSuccess: 1}) {
		t.Fatalf("stats %+v", s)
	}
	h.m.Stop()
	if len(h.changed) != 1 || h.changed[0].Added != 3 {
		t.Fatalf("changed events %+v", h.changed)
	}
	equalLog(t, h.alarmLog())
}

func TestManagerBackoffAndUnreachableAlarm(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "backoff CA")
	srv := newCRLServer(t, []byte("nope"))
	srv.set([]byte("nope"), http.StatusNotFound, "")
	h := startHarness(t, "", ca)
	if err := h.m.SetSources([]Source{{URL: srv.url, PollingInterval: 2 * time.Hour, BackoffInterval: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	u := h.update()
	if u.Success || u.Fetch != Failed || !strings.Contains(u.Err.Error(), "404") {
		t.Fatalf("first attempt %+v", u)
	}
	// Retry delays: 1, 2, 4, 8, 16, 32 minutes, then capped at
	// min(polling 2h, MaxBackoff 1h).
	delays := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	now := t0
	for i, d := range delays {
		st := h.state(srv.url)
		if want := now.Add(d * time.Minute); !st.NextAttempt.Equal(want) || st.ConsecutiveFailures != i+1 || !st.Unreachable {
			t.Fatalf("after failure %d: next attempt %v (want %v), failures %d, unreachable %v", i+1, st.NextAttempt, want, st.ConsecutiveFailures, st.Unreachable)
		}
		if i == len(delays)-1 {
			break
		}
		h.clk.Advance(d*time.Minute - time.Second)
		h.clk.Advance(time.Second)
		now = now.Add(d * time.Minute)
		if u := h.update(); u.Success || !u.Time.Equal(now) {
			t.Fatalf("attempt %d: %+v", i+2, u)
		}
	}
	srv.set(mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1), Number: 1}), http.StatusOK, "")
	if u := h.advance(time.Hour); !u.Success {
		t.Fatalf("recovery: %+v", u)
	}
	st := h.state(srv.url)
	if st.ConsecutiveFailures != 0 || st.Unreachable || st.LastError != "" {
		t.Fatalf("state after recovery %+v", st)
	}
	if s := h.m.Stats(); s.FetchFailure != uint64(len(delays)) || s.FetchSuccess != 1 {
		t.Fatalf("stats %+v", s)
	}
	h.m.Stop()
	equalLog(t, h.alarmLog(), "crl-unreachable raised", "crl-unreachable cleared")
}

func TestManagerRefusesBadCRLsAndKeepsTheLastGood(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "keep CA")
	impostor := testCA(t, g, "keep CA")
	good := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1, 2), Number: 5})
	for _, tc := range []struct {
		desc string
		body []byte
		want error
	}{
		{desc: "garbage body", body: []byte("<html>hello</html>"), want: ErrNotCRL},
		{desc: "truncated DER", body: good[:len(good)/2], want: ErrMalformed},
		{desc: "wrong signer", body: mustCRL(t, impostor, testpki.CRLOptions{Revoked: serials(3), Number: 6}), want: ErrSignature},
		{desc: "lower CRLNumber", body: mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(3), Number: 4}), want: ErrOlder},
		{desc: "delta CRL", body: mustCRL(t, ca, testpki.CRLOptions{Number: 6, ExtraExtensions: []pkixExt{ext([]int{2, 5, 29, 27}, true, []byte{2, 1, 5})}}), want: ErrUnhandledExtension},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			srv := newCRLServer(t, good)
			h := startHarness(t, "", ca)
			h.m.SetSources([]Source{{URL: srv.url}})
			if u := h.update(); !u.Success {
				t.Fatalf("good CRL: %v", u.Err)
			}
			srv.set(tc.body, http.StatusOK, "")
			err := h.m.Refresh(context.Background(), srv.url)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Refresh: %v, want %v", err, tc.want)
			}
			u := h.update()
			if u.Success || u.Fetch != Succeeded || u.Ingestion != Failed || !u.Forced || u.TotalEntries != 2 {
				t.Fatalf("update %+v", u)
			}
			if !h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(2)) || h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(3)) {
				t.Fatal("the last good list was not kept")
			}
			if s := h.m.Stats(); s != (Stats{FetchSuccess: 2, IngestionSuccess: 1, IngestionFailure: 1}) {
				t.Fatalf("stats %+v", s)
			}
			h.m.Stop()
			equalLog(t, h.alarmLog(), "crl-unreachable raised")
		})
	}
}

func TestManagerStale(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "stale CA")
	old := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(7), Number: 1, NextUpdate: t0.Add(time.Hour)})
	srv := newCRLServer(t, old)
	srv.set(old, http.StatusOK, `"old"`)
	h := startHarness(t, "", ca)
	h.m.SetSources([]Source{{URL: srv.url, PollingInterval: 24 * time.Hour}})
	if u := h.update(); !u.Success {
		t.Fatal(u.Err)
	}
	if st := h.state(srv.url); !st.NextAttempt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("next attempt %v, want the CRL's nextUpdate", st.NextAttempt)
	}
	// nextUpdate passes; the server still has the old CRL.
	u := h.advance(time.Hour)
	if !u.Success || !u.NotModified {
		t.Fatalf("update %+v", u)
	}
	if _, inm := srv.stats(); inm != `"old"` {
		t.Fatalf("conditional GET sent If-None-Match %q", inm)
	}
	st := h.state(srv.url)
	if !st.Stale || !st.NextAttempt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("state %+v", st)
	}
	if !h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(7)) {
		t.Fatal("a stale list must be kept")
	}
	h.advance(time.Hour) // still stale: no second alarm
	srv.set(mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(7, 8), Number: 2, ThisUpdate: t0.Add(2 * time.Hour), NextUpdate: t0.Add(48 * time.Hour)}), http.StatusOK, `"new"`)
	if u := h.advance(time.Hour); !u.Success || u.AddedEntries != 1 {
		t.Fatalf("new CRL %+v", u)
	}
	if st := h.state(srv.url); st.Stale {
		t.Fatal("stale not cleared")
	}
	h.m.Stop()
	equalLog(t, h.alarmLog(), "crl-stale raised", "crl-stale cleared")
}

// TestManagerResumesScheduleAlarmsAndCounters: a manager given the state
// and counters of the one before it keeps the failing source's schedule
// (no fetch at start), its failure count and its raised crl-unreachable
// alarm (not raised again, cleared when the source recovers), and counts
// on from the saved counters.
func TestManagerResumesScheduleAlarmsAndCounters(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "resume CA")
	srv := newCRLServer(t, nil)
	srv.set([]byte("nope"), http.StatusNotFound, "")
	src := Source{URL: srv.url, PollingInterval: 2 * time.Hour, BackoffInterval: time.Minute}
	h := startHarness(t, t.TempDir(), ca)
	h.m.SetSources([]Source{src})
	if u := h.update(); u.Success {
		t.Fatalf("first attempt %+v", u)
	}
	h.m.Stop()
	saved := Resume{States: h.m.States(), Stats: h.m.Stats()}
	if len(saved.States) != 1 || !saved.States[0].Unreachable || saved.States[0].ConsecutiveFailures != 1 {
		t.Fatalf("saved %+v", saved)
	}

	h2 := startResumed(t, t.TempDir(), saved, ca)
	if st := h2.state(srv.url); st.ConsecutiveFailures != 1 || !st.Unreachable || !st.NextAttempt.Equal(t0.Add(time.Minute)) || st.LastError == "" {
		t.Fatalf("resumed state %+v", st)
	}
	h2.m.SetSources([]Source{src})
	time.Sleep(100 * time.Millisecond)
	if hits, _ := srv.stats(); hits != 1 {
		t.Fatalf("the resumed source was fetched at start (%d requests)", hits)
	}
	srv.set(mustCRL(t, ca, testpki.CRLOptions{Number: 1}), http.StatusOK, "")
	if u := h2.advance(time.Minute); !u.Success || !u.Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("attempt on the resumed schedule %+v", u)
	}
	if s := h2.m.Stats(); s.FetchFailure != 1 || s.FetchSuccess != 1 {
		t.Fatalf("stats %+v", s)
	}
	h2.m.Stop()
	equalLog(t, h2.alarmLog(), "crl-unreachable cleared")
}

func TestManagerRestartReloadsTheMasterList(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "restart CA")
	other := testCA(t, g, "restart other CA")
	dir := t.TempDir()
	srv := newCRLServer(t, nil)
	srv.set(mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(0, 11, 1<<62), Number: 9}), http.StatusOK, `"e1"`)
	srv2 := newCRLServer(t, mustCRL(t, other, testpki.CRLOptions{Revoked: serials(5), Number: 1}))
	h := startHarness(t, dir, ca, other)
	h.m.SetSources([]Source{{URL: srv.url}, {URL: srv2.url, Learned: true}})
	h.update()
	h.update()
	h.m.Stop()

	// A new process: before any fetch, the revocations are known.
	m2, err := New(Config{Dir: dir, Clock: clock.NewFake(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{0, 11, 1 << 62} {
		if !m2.IsRevoked(ca.Cert.RawSubject, big.NewInt(n)) {
			t.Fatalf("serial %d forgotten after restart", n)
		}
	}
	if !m2.IsRevoked(other.Cert.RawSubject, big.NewInt(5)) || m2.IsRevoked(other.Cert.RawSubject, big.NewInt(11)) {
		t.Fatal("per-issuer index wrong after restart")
	}
	if st := m2.States(); len(st) != 2 || st[0].Entries+st[1].Entries != 4 {
		t.Fatalf("states after reload %+v", st)
	}

	// Polling resumes with the stored validators; the CRLNumber check
	// survives the restart too.
	h2 := startHarness(t, dir, ca, other)
	h2.m.SetSources([]Source{{URL: srv.url}})
	if u := h2.update(); !u.Success || !u.NotModified {
		t.Fatalf("first poll after restart %+v", u)
	}
	if _, inm := srv.stats(); inm != `"e1"` {
		t.Fatalf("If-None-Match %q after restart", inm)
	}
	srv.set(mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1), Number: 8}), http.StatusOK, "")
	if err := h2.m.Refresh(context.Background(), srv.url); !errors.Is(err, ErrOlder) {
		t.Fatalf("older CRL after restart: %v", err)
	}
	// srv2 was dropped from the configuration: its list is gone.
	if h2.m.IsRevoked(other.Cert.RawSubject, big.NewInt(5)) {
		t.Fatal("removed source still in the index")
	}
}

func TestManagerProxy(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "proxy CA")
	srv := newCRLServer(t, mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(4), Number: 1}))
	p := newForwardProxy(t)
	h := startHarness(t, "", ca)
	h.m.SetSources([]Source{{URL: srv.url, Proxy: p.srv.URL}})
	if u := h.update(); !u.Success {
		t.Fatal(u.Err)
	}
	if p.hits.Load() != 1 || p.last.Load() != srv.url {
		t.Fatalf("proxy hits %d, last %v", p.hits.Load(), p.last.Load())
	}
}

func TestManagerRefreshAndSources(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "refresh CA")
	der := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1), Number: 1})
	srv := newCRLServer(t, der)
	srv.set(der, http.StatusOK, `"x"`)
	h := startHarness(t, t.TempDir())
	if err := h.m.Refresh(context.Background(), srv.url); !errors.Is(err, ErrUnknownSource) {
		t.Fatalf("unknown URL: %v", err)
	}
	if err := h.m.SetSources([]Source{{URL: "ftp://x/y"}}); err == nil {
		t.Fatal("ftp URL accepted")
	}
	h.m.SetSources([]Source{{URL: srv.url}})
	if u := h.update(); !errors.Is(u.Err, ErrUntrustedIssuer) {
		t.Fatalf("no trusted CA yet: %+v", u)
	}
	// Trusting the CA retries at once, without waiting for the backoff.
	h.m.SetTrustedCAs(caPool(ca))
	if u := h.update(); !u.Success {
		t.Fatal(u.Err)
	}
	if err := h.m.Refresh(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if u := h.update(); !u.Forced || !u.Success || !u.NotModified { // same bytes: unchanged
		t.Fatalf("forced refresh %+v", u)
	}
	if _, inm := srv.stats(); inm != "" {
		t.Fatalf("a forced refresh sent If-None-Match %q", inm)
	}
	h.m.SetSources(nil)
	deadline := time.Now().Add(5 * time.Second)
	for h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(1)) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(1)) || len(h.m.States()) != 0 {
		t.Fatal("removed source still held")
	}
	h.m.Stop()
	if len(h.removed) != 1 || h.changed[len(h.changed)-1].Removed != 1 {
		t.Fatalf("removed %v, changed %+v", h.removed, h.changed)
	}
	equalLog(t, h.alarmLog(), "crl-unreachable raised", "crl-unreachable cleared")
	if err := h.m.Refresh(context.Background(), ""); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Refresh after Stop: %v", err)
	}
}

// TestManagerRefreshWaitsForHandler: when Refresh returns, the event
// handler has already handled the events of that fetch (the engine reads
// its state and re-grades certificates there, and the RPC answers from
// that view). The handler is slow on purpose.
func TestManagerRefreshWaitsForHandler(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "slow handler CA")
	srv := newCRLServer(t, mustCRL(t, ca, testpki.CRLOptions{Number: 1}))
	var mu sync.Mutex
	entries := -1
	changed := 0
	m, err := New(Config{
		Dir:    t.TempDir(),
		Clock:  clock.NewFake(t0),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Fetch:  FetchOptions{Timeout: 5 * time.Second},
		OnEvent: func(e Event) {
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			switch e := e.(type) {
			case *StateChange:
				if e.State.Issuer != "" {
					entries = e.State.Entries
				}
			case *Changed:
				changed++
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.SetTrustedCAs(caPool(ca))
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	m.SetSources([]Source{{URL: srv.url}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Refresh(ctx, srv.url); err != nil {
		t.Fatal(err)
	}
	srv.set(mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(7, 8), Number: 2}), http.StatusOK, "")
	if err := m.Refresh(ctx, srv.url); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	gotEntries, gotChanged := entries, changed
	mu.Unlock()
	if gotEntries != 2 || gotChanged != 1 {
		t.Fatalf("after Refresh returned the handler had seen entries %d and %d Changed events; want 2 and 1", gotEntries, gotChanged)
	}
}

// TestManagerMillionEntries fetches a 1,000,000-entry CRL (about 33 MiB,
// generated at test time) from a real HTTP server through the manager and
// answers lookups from it.
func TestManagerMillionEntries(t *testing.T) {
	skipMillion(t)
	ca := testCA(t, testpki.New(t0), "million CA")
	der := buildCRL(t, ca, bigCRLOptions{N: 1_000_000, Sequential: true, Number: 1})
	srv := newCRLServer(t, der)
	h := startHarness(t, t.TempDir(), ca)
	h.m.SetSources([]Source{{URL: srv.url}})
	u := h.update()
	if !u.Success || u.TotalEntries != 1_000_000 || u.AddedEntries != 1_000_000 || u.Size != int64(len(der)) {
		t.Fatalf("update %+v", u)
	}
	for _, n := range []int64{1, 500_000, 1_000_000} {
		if !h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(n)) {
			t.Fatalf("serial %d not revoked", n)
		}
	}
	if h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(1_000_001)) || h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(0)) {
		t.Fatal("serial outside the list revoked")
	}
}
