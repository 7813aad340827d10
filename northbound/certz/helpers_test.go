package certz_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnsi/certz"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/northbound/auth"
	certzsrv "github.com/pkiagent/pkiagent/northbound/certz"
	"github.com/pkiagent/pkiagent/northbound/gnmi"
	"github.com/pkiagent/pkiagent/northbound/tlsboot"
	"github.com/pkiagent/pkiagent/pki"
	"github.com/pkiagent/pkiagent/pki/keystore/file"
	"github.com/pkiagent/pkiagent/telemetry"
)

const (
	adminPW  = "admin-pass"
	opPW     = "operator-pass"
	viewerPW = "viewer-pass"
	// certName is the managed certificate the gNMI server serves
	// (--tls-cert-name).
	certName = "gnmi"
)

var usersOnce = sync.OnceValues(func() ([]auth.User, error) {
	var out []auth.User
	for _, u := range []struct{ name, role, pw string }{{"admin", "admin", adminPW}, {"op", "operator", opPW}, {"viewer", "viewer", viewerPW}} {
		h, err := auth.HashPassword(u.pw)
		if err != nil {
			return nil, err
		}
		out = append(out, auth.User{Name: u.name, Role: u.role, Hash: h})
	}
	return out, nil
})

// engineAdapter gives the certz server the real PKI engine, as
// cmd/pki-agent does.
type engineAdapter struct{ *pki.Engine }

func (a engineAdapter) BeginRotation(name string, c api.Caller) (certzsrv.Rotation, error) {
	r, err := a.Engine.BeginRotation(name, c)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// env is a gNMI server with certz over real TLS on 127.0.0.1, backed by a
// real datastore and PKI engine with a file keystore. The server serves
// the managed certificate certName (A), issued by ca and trusted as
// trusted-ca-certificate "root".
type env struct {
	t      testing.TB
	dir    string
	addr   string
	store  *agent.Store
	engine *pki.Engine
	keys   *file.Store
	gen    *testpki.Generator
	ca     *testpki.Cert
	certA  *x509.Certificate
	tls    *tlsboot.Managed
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("CERTZ_TEST_LOG") != "" {
		log = slog.Default()
	}
	users, err := usersOnce()
	if err != nil {
		t.Fatal(err)
	}
	uf := filepath.Join(dir, "users.json")
	if err := auth.Save(uf, users); err != nil {
		t.Fatal(err)
	}
	u, err := auth.Open(auth.Config{File: uf, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	bus := telemetry.NewBus()
	store := agent.New(agent.Config{Logger: log, Bus: bus})
	al, err := audit.Open(filepath.Join(dir, "audit.log"), "r1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := file.New(filepath.Join(dir, "keys"), log)
	if err != nil {
		t.Fatal(err)
	}
	e, err := pki.New(ctx, pki.Config{StateDir: dir, Logger: log, Bus: bus, Audit: al, Keys: map[string]pki.KeyStore{"file": keys}})
	if err != nil {
		t.Fatal(err)
	}
	store.AddValidator(e)
	store.AddApplier(e)
	store.AddStateSource(e)
	g := testpki.New(time.Now())
	ev := &env{t: t, dir: dir, store: store, engine: e, keys: keys, gen: g, ca: testpki.Must(g.Root(testpki.Options{CN: "certz test root A"}))}
	ev.setTrusted("root", string(ev.ca.PEM()))
	ev.certA = ev.provision(certName)

	boot, err := tlsboot.Bootstrap{Dir: filepath.Join(dir, "tls"), Logger: log}.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	holder := tlsboot.NewHolder(boot)
	ev.tls = &tlsboot.Managed{Holder: holder, Name: certName, Load: e.TLSCertificate, Fallback: boot, Logger: log}
	if err := ev.tls.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	cz, err := certzsrv.New(certzsrv.Config{
		Engine: engineAdapter{e}, CRLs: e, Store: store, ProfilesFile: filepath.Join(dir, "certz-profiles.json"),
		ServerCertName: certName, Logger: log,
		OnInstalled: func(name string) {
			if name == certName {
				ev.tls.Reload(ctx)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gnmi.New(gnmi.Config{Store: store, Bus: bus, Auth: u, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ev.addr = lis.Addr().String()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); e.Run(ctx) }()
	go func() { defer wg.Done(); ev.tls.Watch(ctx, bus) }()
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx, lis, tlsboot.ServerConfig(holder, nil), cz.Register); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		store.Close()
		al.Close()
	})
	return ev
}

// setTrusted commits trusted-ca-certificate[name] as an operator would.
func (e *env) setTrusted(name, content string) {
	e.t.Helper()
	b, _ := json.Marshal(map[string]string{"name": name, "content": content})
	tx := e.store.Begin(agent.Running)
	if err := tx.Apply(agent.Edit{Op: agent.OpReplace, Path: trustedPath(name), Value: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: b}}}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.Commit(context.Background(), tx, agent.CommitOptions{User: "admin"}); err != nil {
		e.t.Fatal(err)
	}
}

func trustedPath(name string) *gpb.Path {
	return &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}, {Name: "trusted-ca-certificate", Key: map[string]string{"name": name}}}}
}

// provision runs key -> CSR -> CA signs -> import for name, as an operator
// does over NETCONF.
func (e *env) provision(name string) *x509.Certificate {
	e.t.Helper()
	ctx := context.Background()
	admin := api.Caller{User: "admin", Role: api.RoleAdmin}
	if _, err := e.engine.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: name, Algorithm: "ecc", ECCCurve: "secp256r1", KeyStorage: "file"}); err != nil {
		e.t.Fatal(err)
	}
	out, err := e.engine.GenerateCSR(ctx, admin, api.GenerateCSRInput{Name: name, CommonName: "localhost", SubjectAltName: &api.SubjectAltName{DNS: []string{"localhost"}, IP: []string{"127.0.0.1"}}})
	if err != nil {
		e.t.Fatal(err)
	}
	c := signCSR(e.t, e.ca, []byte(out.CSR))
	if _, err := e.engine.ImportCertificate(ctx, admin, api.ImportCertificateInput{Name: name, Certificate: string(pemOf(c))}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

var serial = struct {
	sync.Mutex
	n int64
}{n: 1 << 20}

// signCSR is the CA: it issues a TLS server/client certificate for the CSR.
func signCSR(t testing.TB, ca *testpki.Cert, csrPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("not a PEM CSR: %q", csrPEM)
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	serial.Lock()
	serial.n++
	sn := big.NewInt(serial.n)
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, req.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

type userCreds struct{ user, pw string }

func (c userCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"username": c.user, "password": c.pw}, nil
}
func (userCreds) RequireTransportSecurity() bool { return true }

// conn is a client connection that has completed its TLS handshake; seen
// is the server certificate it verified.
type conn struct {
	cc   *grpc.ClientConn
	seen chan *x509.Certificate
}

// dial connects as user, trusting roots, and records the certificate the
// server presented.
func (e *env) dial(user, pw string, roots ...*testpki.Cert) *conn {
	e.t.Helper()
	c := &conn{seen: make(chan *x509.Certificate, 8)}
	cfg := &tls.Config{RootCAs: testpki.Pool(roots...), ServerName: "localhost",
		VerifyConnection: func(cs tls.ConnectionState) error {
			select {
			case c.seen <- cs.PeerCertificates[0]:
			default:
			}
			return nil
		}}
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)), grpc.WithPerRPCCredentials(userCreds{user, pw}))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cc.Close() })
	c.cc = cc
	return c
}

func (c *conn) certz() certz.CertzClient { return certz.NewCertzClient(c.cc) }
func (c *conn) gnmi() gpb.GNMIClient     { return gpb.NewGNMIClient(c.cc) }

// handshake returns the certificate a new TLS connection to the server
// verifies against roots.
func (e *env) handshake(roots ...*testpki.Cert) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", e.addr, &tls.Config{RootCAs: testpki.Pool(roots...), ServerName: "localhost", NextProtos: []string{"h2"}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
