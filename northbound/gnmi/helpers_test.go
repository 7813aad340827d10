package gnmi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/northbound/auth"
	"github.com/pkiagent/pkiagent/northbound/tlsboot"
	"github.com/pkiagent/pkiagent/telemetry"
)

const (
	adminPW  = "admin-pass"
	viewerPW = "viewer-pass"
	opPW     = "operator-pass"
)

// users are shared by the tests of this package: argon2id hashing is the
// slow part of a setup.
var usersOnce = sync.OnceValues(func() ([]auth.User, error) {
	var out []auth.User
	for _, u := range []struct{ name, role, pw string }{{"admin", "admin", adminPW}, {"viewer", "viewer", viewerPW}, {"op", "operator", opPW}} {
		h, err := auth.HashPassword(u.pw)
		if err != nil {
			return nil, err
		}
		out = append(out, auth.User{Name: u.name, Role: u.role, Hash: h})
	}
	return out, nil
})

// fakeState is a state source the tests (playing the PKI engine) set.
type fakeState struct {
	mu   sync.Mutex
	root *gen.Device
}

func (f *fakeState) State() *gen.Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.root
}

func (f *fakeState) set(d *gen.Device) {
	f.mu.Lock()
	f.root = d
	f.mu.Unlock()
}

// failApplier refuses commits that set a trusted CA named "refuse" or
// remove one named "sticky".
type failApplier struct{}

func (failApplier) Apply(_ context.Context, c *api.Commit) error {
	if c.New.GetAuthority().GetTrustedCaCertificate("refuse") != nil && c.Old.GetAuthority().GetTrustedCaCertificate("refuse") == nil {
		return errors.New("engine refuses trusted CA refuse")
	}
	if c.New.GetAuthority().GetTrustedCaCertificate("sticky") == nil && c.Old.GetAuthority().GetTrustedCaCertificate("sticky") != nil {
		return errors.New("engine refuses to drop trusted CA sticky")
	}
	return nil
}

type env struct {
	t      testing.TB
	dir    string
	addr   string
	caFile string
	store  *agent.Store
	bus    *telemetry.Bus
	state  *fakeState
	srv    *Server
	roots  *x509.CertPool
}

type envOpts struct {
	clock  clock.Clock
	limits Limits
	// register adds services to the gRPC server, as gNSI certz is added.
	register []func(*grpc.Server)
}

func newEnv(t *testing.T, o envOpts) *env { return newEnvB(t, o) }

func newEnvB(t testing.TB, o envOpts) *env {
	t.Helper()
	dir := t.TempDir()
	users, err := usersOnce()
	if err != nil {
		t.Fatal(err)
	}
	uf := filepath.Join(dir, "users.json")
	if err := auth.Save(uf, users); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() && os.Getenv("GNMI_TEST_LOG") != "" {
		log = slog.Default()
	}
	u, err := auth.Open(auth.Config{File: uf, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	clk := o.clock
	if clk == nil {
		clk = clock.Real{}
	}
	bus := telemetry.NewBus()
	store := agent.New(agent.Config{Clock: clk, Logger: log, Appliers: []api.Applier{failApplier{}}, Bus: bus})
	st := &fakeState{root: &gen.Device{}}
	store.AddStateSource(st)
	cert, err := tlsboot.Bootstrap{Dir: filepath.Join(dir, "tls"), Logger: log}.Ensure()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Store: store, Bus: bus, Auth: u, Logger: log, Limits: o.limits})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, tlsboot.ServerConfig(tlsboot.NewHolder(cert), nil), o.register...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10s of cancel")
		}
		store.Close()
	})
	caFile := filepath.Join(dir, "tls", tlsboot.CAFile)
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &env{t: t, dir: dir, addr: lis.Addr().String(), caFile: caFile, store: store, bus: bus, state: st, srv: srv, roots: roots}
}

// userCreds sends username/password metadata like gnmic.
type userCreds struct{ user, pw string }

func (c userCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"username": c.user, "password": c.pw}, nil
}
func (userCreds) RequireTransportSecurity() bool { return true }

// client dials the env as user (no credentials when user is empty).
func (e *env) client(user, pw string, extra ...grpc.DialOption) gnmi.GNMIClient {
	e.t.Helper()
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: e.roots, ServerName: "localhost"}))}, extra...)
	if user != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(userCreds{user, pw}))
	}
	conn, err := grpc.NewClient(e.addr, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return gnmi.NewGNMIClient(conn)
}

func (e *env) admin() gnmi.GNMIClient { return e.client("admin", adminPW) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// p parses a gNMI path string such as /authority/trusted-ca-certificate[name=a]/content.
func p(t testing.TB, s string) *gnmi.Path {
	t.Helper()
	path, err := parsePathString(s)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func jsonVal(s string) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonVal{JsonVal: []byte(s)}}
}

func ietfVal(s string) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
}

func strVal(s string) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: s}}
}

func code(err error) string { return status.Code(err).String() }

func parsePathString(s string) (*gnmi.Path, error) { return ygot.StringToStructuredPath(s) }
