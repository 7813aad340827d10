package crl

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

// TestInstall: an installed bundle is verified like a fetched CRL, answers
// IsRevoked when Install returns, emits the same Update events, survives
// SetSources and a restart, and is replaced (or undone) as a whole.
func TestInstall(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "install CA")
	stranger := testCA(t, g, "untrusted CA")
	dir := t.TempDir()
	h := startHarness(t, dir, ca)
	ctx := context.Background()
	h.m.SetSources(nil)

	v1 := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(7), Number: 1})
	for _, tc := range []struct {
		desc string
		crls [][]byte
		want error
	}{
		{"not a CRL", [][]byte{[]byte("hello")}, ErrNotCRL},
		{"untrusted issuer", [][]byte{mustCRL(t, stranger, testpki.CRLOptions{Revoked: serials(7)})}, ErrUntrustedIssuer},
		{"one bad CRL in the bundle", [][]byte{v1, []byte{0x30, 0x03, 0x02, 0x01, 0x01}}, ErrMalformed},
	} {
		if _, err := h.m.Install(ctx, "p", tc.crls); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.desc, err, tc.want)
		}
	}
	if h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(7)) || len(h.m.States()) != 0 {
		t.Fatal("a refused bundle changed something")
	}
	if _, err := h.m.Install(ctx, "../x", [][]byte{v1}); err == nil {
		t.Fatal("bundle name escaping the directory accepted")
	}

	prev, err := h.m.Install(ctx, "p", [][]byte{testpki.CRLPEM(v1)})
	if err != nil || len(prev) != 0 {
		t.Fatalf("install: %v, prev %d", err, len(prev))
	}
	if !h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(7)) {
		t.Fatal("installed CRL not in the index")
	}
	u := h.update()
	if !u.Success || !strings.HasPrefix(u.URL, "file://") || u.TotalEntries != 1 || u.Issuer == "" {
		t.Fatalf("update %+v", u)
	}
	// The engine's next SetSources keeps the installed bundle.
	h.m.SetSources(nil)
	if err := h.m.Refresh(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if !h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(7)) {
		t.Fatal("SetSources dropped the installed bundle")
	}

	v2 := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(8), Number: 2})
	prev, err = h.m.Install(ctx, "p", [][]byte{v2})
	if err != nil || len(prev) != 1 {
		t.Fatalf("replace: %v, prev %d", err, len(prev))
	}
	waitIndex(t, h.m, ca, 7, false)
	if !h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(8)) {
		t.Fatal("the new bundle is not in force")
	}
	// Undo: the previous bundle comes back (an older CRL, from a new file).
	if _, err := h.m.Install(ctx, "p", prev); err != nil {
		t.Fatal(err)
	}
	waitIndex(t, h.m, ca, 8, false)
	if !h.m.IsRevoked(ca.Cert.RawSubject, big.NewInt(7)) {
		t.Fatal("undo did not restore the previous bundle")
	}
	h.m.Stop()

	// A restart keeps the bundle: from the master list, then as a source.
	m2, err := New(Config{Dir: dir, Clock: clock.NewFake(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !m2.IsRevoked(ca.Cert.RawSubject, big.NewInt(7)) {
		t.Fatal("installed CRL forgotten after restart")
	}
	if srcs := m2.installedSources(); len(srcs) != 1 || !strings.HasPrefix(srcs[0].URL, "file://"+filepath.Join(dir, InstalledDir, "p")) {
		t.Fatalf("installed sources after restart %+v", srcs)
	}
}

func waitIndex(t *testing.T, m *Manager, ca *testpki.Cert, serial int64, want bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if m.IsRevoked(ca.Cert.RawSubject, big.NewInt(serial)) == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("serial %d revoked = %v, want %v", serial, !want, want)
}
