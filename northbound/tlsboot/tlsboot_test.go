package tlsboot

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestEnsureCreatesAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	b := Bootstrap{Dir: dir, Hostname: "router1", Clock: clk, Logger: quiet()}
	c1, err := b.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{CAFile: 0o644, caKeyFile: 0o600, ServerCertFile: 0o644, serverKeyFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	leaf := c1.Leaf
	for _, n := range []string{"localhost", "router1"} {
		if err := leaf.VerifyHostname(n); err != nil {
			t.Errorf("SAN %s: %v", n, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(ip); err != nil {
			t.Errorf("SAN %s: %v", ip, err)
		}
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, CAFile))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: clk.Now(), DNSName: "localhost"}); err != nil {
		t.Errorf("server certificate does not verify against ca.pem: %v", err)
	}

	// Restart: same certificate.
	c2, err := b.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Error("restart issued a new server certificate")
	}
	// Near the end of the server certificate: reissued by the same CA.
	clk.Advance(serverLifetime - renewBefore + time.Hour)
	c3, err := b.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c1.Certificate[0], c3.Certificate[0]) {
		t.Error("expiring server certificate was not reissued")
	}
	if !bytes.Equal(c1.Certificate[1], c3.Certificate[1]) {
		t.Error("reissue replaced the CA")
	}
	// A new hostname adds its SAN.
	b.Hostname = "router2"
	c4, err := b.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	if err := c4.Leaf.VerifyHostname("router2"); err != nil {
		t.Errorf("new hostname: %v", err)
	}
}

// serve runs a TLS listener on 127.0.0.1 that answers each connection with
// "ok" and returns its address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if tc, ok := c.(*tls.Conn); ok && tc.Handshake() == nil {
				c.Write([]byte("ok"))
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

func dial(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestHolderHotSwapAndMTLS(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	a, err := Bootstrap{Dir: dirA, Logger: quiet()}.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	bc, err := Bootstrap{Dir: dirB, Logger: quiet()}.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	h := NewHolder(a)
	addr := serve(t, ServerConfig(h, nil))
	roots := x509.NewCertPool()
	roots.AddCert(a.Leaf)
	roots.AddCert(bc.Leaf)
	caA, _ := x509.ParseCertificate(a.Certificate[1])
	caB, _ := x509.ParseCertificate(bc.Certificate[1])
	roots.AddCert(caA)
	roots.AddCert(caB)
	got, err := dial(addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(a.Leaf) {
		t.Error("first handshake did not get certificate A")
	}
	h.Set(bc)
	got, err = dial(addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(bc.Leaf) {
		t.Error("handshake after Set did not get certificate B")
	}
	// TLS 1.1 is refused.
	if _, err := dial(addr, &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}

	// mTLS: client certificates must chain to the client CA. A's server
	// certificate has no clientAuth EKU, so use a fresh client cert from
	// the same kind of bootstrap: B's CA signs nothing for clients here, so
	// the check is that a client without a certificate is refused.
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(caB)
	mt := serve(t, ServerConfig(NewHolder(a), clientCAs))
	if _, err := dial(mt, &tls.Config{RootCAs: roots, ServerName: "localhost"}); err == nil {
		t.Error("mTLS server accepted a client without a certificate")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKeyPair(filepath.Join(dir, "x.pem"), filepath.Join(dir, "x.key")); err == nil {
		t.Error("missing files accepted")
	}
	os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not pem"), 0o600)
	if _, err := LoadClientCAs(filepath.Join(dir, "ca.pem")); err == nil {
		t.Error("empty CA bundle accepted")
	}
}
