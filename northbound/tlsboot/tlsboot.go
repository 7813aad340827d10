// Package tlsboot provides the gNMI server's TLS identity: a self-signed CA
// and server certificate bootstrapped in STATE-DIR/tls (or files the
// operator gives), served through a Holder whose certificate can be swapped
// without a restart.
package tlsboot

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/persist"
)

// Files in the bootstrap directory.
const (
	CAFile         = "ca.pem"
	caKeyFile      = "ca-key.pem"
	ServerCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
)

// Lifetimes of bootstrapped certificates. A server certificate within
// renewBefore of its end is reissued by the same CA at start.
const (
	caLifetime     = 10 * 365 * 24 * time.Hour
	serverLifetime = 2 * 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
)

// ErrTLSFiles: certificate or key files are unreadable or do not match.
var ErrTLSFiles = errors.New("bad TLS certificate files")

// Bootstrap says where to keep the bootstrapped CA and server certificate.
type Bootstrap struct {
	// Dir is STATE-DIR/tls.
	Dir string
	// Hostname is added to the SANs (os.Hostname when empty).
	Hostname string
	Clock    clock.Clock
	Logger   *slog.Logger
}

// Ensure returns the bootstrapped server certificate (leaf then CA), creating
// the CA and the certificate on first start and reusing them afterwards. A
// server certificate that expires soon or lacks a wanted SAN is reissued by
// the existing CA, so clients that trust ca.pem keep working.
func (b Bootstrap) Ensure() (tls.Certificate, error) {
	if b.Clock == nil {
		b.Clock = clock.Real{}
	}
	if b.Logger == nil {
		b.Logger = slog.Default()
	}
	if b.Hostname == "" {
		b.Hostname, _ = os.Hostname()
	}
	if err := os.MkdirAll(b.Dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("creating %s: %w", b.Dir, err)
	}
	if err := persist.CleanTemp(b.Dir); err != nil {
		return tls.Certificate{}, err
	}
	now := b.Clock.Now()
	caCert, caKey, err := loadPair(filepath.Join(b.Dir, CAFile), filepath.Join(b.Dir, caKeyFile))
	if err != nil || !caCert.IsCA || now.After(caCert.NotAfter.Add(-renewBefore)) {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			b.Logger.Warn("bootstrapped TLS CA unusable; creating a new one (clients must fetch the new ca.pem)", "dir", b.Dir, "err", err)
		}
		caCert, caKey, err = b.newCA(now)
		if err != nil {
			return tls.Certificate{}, err
		}
		b.Logger.Info("created a self-signed TLS CA for gNMI", "ca", filepath.Join(b.Dir, CAFile))
	}
	srvCert, srvKey, err := loadPair(filepath.Join(b.Dir, ServerCertFile), filepath.Join(b.Dir, serverKeyFile))
	if err != nil || !b.serverOK(srvCert, caCert, now) {
		srvCert, srvKey, err = b.newServer(now, caCert, caKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		b.Logger.Info("issued the gNMI server certificate", "cert", filepath.Join(b.Dir, ServerCertFile), "sans", b.dnsNames(), "not-after", srvCert.NotAfter)
	}
	return tls.Certificate{Certificate: [][]byte{srvCert.Raw, caCert.Raw}, PrivateKey: srvKey, Leaf: srvCert}, nil
}

func (b Bootstrap) dnsNames() []string {
	names := []string{"localhost"}
	if b.Hostname != "" && b.Hostname != "localhost" {
		names = append(names, b.Hostname)
	}
	return names
}

func ips() []net.IP { return []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback} }

func (b Bootstrap) serverOK(c, ca *x509.Certificate, now time.Time) bool {
	if now.After(c.NotAfter.Add(-renewBefore)) || now.Before(c.NotBefore) {
		return false
	}
	if err := c.CheckSignatureFrom(ca); err != nil {
		return false
	}
	for _, n := range b.dnsNames() {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips() {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func (b Bootstrap) newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pki-agent bootstrap CA " + b.Hostname, Organization: []string{"pki-agent"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return b.issue(tmpl, nil, key, key, CAFile, caKeyFile)
}

func (b Bootstrap) newServer(now time.Time, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: b.dnsNames()[len(b.dnsNames())-1], Organization: []string{"pki-agent"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     b.dnsNames(),
		IPAddresses:  ips(),
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	return b.issue(tmpl, ca, key, caKey, ServerCertFile, serverKeyFile)
}

func (b Bootstrap) issue(tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey, certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing %s: %w", certFile, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	// The key first: a certificate on disk always has its key beside it.
	if err := persist.WriteFileAtomic(filepath.Join(b.Dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, nil, fmt.Errorf("writing %s: %w", keyFile, err)
	}
	if err := persist.WriteFileAtomic(filepath.Join(b.Dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, fmt.Errorf("writing %s: %w", certFile, err)
	}
	return cert, key, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1))
}

// loadPair reads a bootstrapped certificate and its ECDSA key.
func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s is not an ECDSA key", ErrTLSFiles, keyFile)
	}
	return pair.Leaf, key, nil
}

// LoadKeyPair reads an operator's certificate chain and key (--tls-cert,
// --tls-key).
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %s and %s: %w", ErrTLSFiles, certFile, keyFile, err)
	}
	return pair, nil
}

// LoadClientCAs reads the CA bundle that client certificates must chain to
// (--client-ca).
func LoadClientCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: client CA bundle: %w", ErrTLSFiles, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrTLSFiles, file)
	}
	return pool, nil
}

// Holder serves the certificate in force and lets it be replaced while the
// server runs: new handshakes get the new certificate, established
// connections keep theirs. Safe for concurrent use.
type Holder struct {
	cur atomic.Pointer[tls.Certificate]
}

// NewHolder returns a holder serving c.
func NewHolder(c tls.Certificate) *Holder {
	h := &Holder{}
	h.Set(c)
	return h
}

// Set makes c the certificate for new handshakes (the PKI engine calls it
// when the managed certificate is re-imported or rotated).
func (h *Holder) Set(c tls.Certificate) {
	if c.Leaf == nil && len(c.Certificate) > 0 {
		c.Leaf, _ = x509.ParseCertificate(c.Certificate[0])
	}
	h.cur.Store(&c)
}

// Current returns the certificate in force.
func (h *Holder) Current() *tls.Certificate { return h.cur.Load() }

// GetCertificate is a tls.Config.GetCertificate.
func (h *Holder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := h.cur.Load()
	if c == nil {
		return nil, errors.New("no server certificate is configured")
	}
	return c, nil
}

// ServerConfig returns a TLS 1.2+ server configuration serving h's
// certificate. With clientCAs it requires a client certificate that chains
// to them (mTLS).
func ServerConfig(h *Holder, clientCAs *x509.CertPool) *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: h.GetCertificate,
		NextProtos:     []string{"h2"},
	}
	if clientCAs != nil {
		cfg.ClientCAs = clientCAs
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}
