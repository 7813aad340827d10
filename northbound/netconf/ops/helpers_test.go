package ops

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"golang.org/x/crypto/ssh"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/framing"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	"github.com/pkiagent/pkiagent/telemetry"
)

const ncNS = ncxml.BaseNS

// users: alice admin/secret, bob admin/secret, olga operator/pw, victor viewer/pw.
type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, user, password string, _ net.Addr) (string, error) {
	switch {
	case (user == "alice" || user == "bob") && password == "secret":
		return api.RoleAdmin, nil
	case user == "olga" && password == "pw":
		return api.RoleOperator, nil
	case user == "victor" && password == "pw":
		return api.RoleViewer, nil
	}
	return "", errors.New("bad user or password")
}

// fakePKI answers the rpcs from memory: a fake engine, so the NETCONF
// conversion can be tested apart from the real one (cmd/pki-agent tests
// the real engine end to end).
type fakePKI struct {
	mu    sync.Mutex
	calls []string
	keys  map[string]api.GenerateKeyInput
}

func (f *fakePKI) GeneratePrivateKey(_ context.Context, c api.Caller, in api.GenerateKeyInput) (api.GenerateKeyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c.User+":generate-private-key")
	if f.keys == nil {
		f.keys = map[string]api.GenerateKeyInput{}
	}
	if _, ok := f.keys[in.Name]; ok {
		return api.GenerateKeyOutput{}, &api.InputError{RPC: "generate-private-key", Leaf: "name", Err: fmt.Errorf("%w: a key named %s exists", api.ErrInvalid, in.Name)}
	}
	f.keys[in.Name] = in
	return api.GenerateKeyOutput{Name: in.Name, KeyAlgorithm: in.Algorithm + "-" + in.ECCCurve, KeyStorage: in.KeyStorage}, nil
}

func (f *fakePKI) GenerateCSR(_ context.Context, c api.Caller, in api.GenerateCSRInput) (api.GenerateCSROutput, error) {
	var sans []string
	if in.SubjectAltName != nil {
		sans = in.SubjectAltName.DNS
	}
	return api.GenerateCSROutput{CSR: "CSR for " + in.CommonName + " " + strings.Join(sans, ",")}, nil
}

func (f *fakePKI) ImportCertificate(context.Context, api.Caller, api.ImportCertificateInput) (api.ImportCertificateOutput, error) {
	return api.ImportCertificateOutput{}, fmt.Errorf("%w: certificate: no PEM block found", api.ErrInvalid)
}

func (f *fakePKI) RefreshCRL(context.Context, api.Caller, api.RefreshCRLInput) (api.RefreshCRLOutput, error) {
	return api.RefreshCRLOutput{Result: []api.RefreshCRLResult{{URL: "http://a/x.crl", Success: true}, {URL: "http://b/y.crl", Message: "timeout"}}}, nil
}

func (f *fakePKI) ValidatePeerCertificate(context.Context, api.Caller, api.ValidatePeerInput) (api.ValidatePeerOutput, error) {
	return api.ValidatePeerOutput{Result: "invalid", Reason: "no chain"}, nil
}

func (f *fakePKI) EnrollCertificate(context.Context, api.Caller, api.EnrollCertificateInput) (api.EnrollCertificateOutput, error) {
	return api.EnrollCertificateOutput{Result: "failed", Message: "no CA"}, nil
}

func (f *fakePKI) DeletePrivateKey(context.Context, api.Caller, api.DeletePrivateKeyInput) error {
	return nil
}

type env struct {
	store *agent.Store
	bus   *telemetry.Bus
	h     *Handler
	srv   *netconf.Server
	addr  string
	pki   *fakePKI
}

func newEnv(t testing.TB) *env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	bus := telemetry.NewBus()
	store := agent.New(agent.Config{Logger: log, Bus: bus})
	e := &env{store: store, bus: bus, pki: &fakePKI{}}
	h, err := New(Config{Store: store, Bus: bus, PKI: e.pki, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := netconf.NewServer(netconf.Config{
		StateDir: t.TempDir(), Handler: h, Authenticator: fakeAuth{}, Capabilities: Capabilities(),
		HelloTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { h.Run(ctx) })
	wg.Go(func() {
		if err := srv.Serve(ctx, ln); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		store.Close()
	})
	e.h, e.srv, e.addr = h, srv, ln.Addr().String()
	return e
}

// client speaks NETCONF base:1.1 by hand over SSH.
type client struct {
	t       testing.TB
	conn    *ssh.Client
	fr      *framing.Reader
	fw      *framing.Writer
	id      uint32
	hello   *ncxml.Hello
	nextID  int
	notifs  chan string
	replies chan string
}

func dial(t testing.TB, addr, user, pw string) *client {
	t.Helper()
	conn, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password(pw)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("ssh dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe()
	stdout, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("netconf"); err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: conn, fr: framing.NewReader(bufio.NewReader(stdout), 0), fw: framing.NewWriter(stdin),
		notifs: make(chan string, 100), replies: make(chan string, 10)}
	msg, err := c.fr.ReadMessage()
	if err != nil {
		t.Fatalf("server hello: %v", err)
	}
	if c.hello, err = ncxml.ParseHello(msg); err != nil {
		t.Fatal(err)
	}
	c.id = c.hello.SessionID
	hello := `<hello xmlns="` + ncNS + `"><capabilities><capability>` + ncxml.CapBase10 + `</capability><capability>` + ncxml.CapBase11 + `</capability></capabilities></hello>`
	if err := c.fw.WriteMessage([]byte(hello)); err != nil {
		t.Fatal(err)
	}
	c.fr.SetChunked()
	c.fw.SetChunked()
	go func() {
		defer close(c.replies)
		for {
			m, err := c.fr.ReadMessage()
			if err != nil {
				return
			}
			if strings.HasPrefix(string(m), "<notification") {
				c.notifs <- string(m)
			} else {
				c.replies <- string(m)
			}
		}
	}()
	c.rpc("<get-config><source><running/></source><filter><none xmlns='urn:x'/></filter></get-config>") // registered once answered
	return c
}

// rpc sends op and returns the reply.
func (c *client) rpc(op string) string {
	c.t.Helper()
	c.nextID++
	msg := `<rpc xmlns="` + ncNS + `" message-id="` + strconv.Itoa(c.nextID) + `">` + op + `</rpc>`
	if err := c.fw.WriteMessage([]byte(msg)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	select {
	case r, ok := <-c.replies:
		if !ok {
			c.t.Fatalf("session closed while waiting for the reply to %.200s", op)
		}
		return r
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no reply to %.200s", op)
	}
	return ""
}

// notification waits for the next notification.
func (c *client) notification(timeout time.Duration) (string, bool) {
	select {
	case n := <-c.notifs:
		return n, true
	case <-time.After(timeout):
		return "", false
	}
}

type rpcReply struct {
	XMLName xml.Name
	OK      *struct{}  `xml:"ok"`
	Errors  []rpcError `xml:"rpc-error"`
	Data    struct {
		Inner string `xml:",innerxml"`
	} `xml:"data"`
	Inner string `xml:",innerxml"`
}

type rpcError struct {
	Type       string `xml:"error-type"`
	Tag        string `xml:"error-tag"`
	Severity   string `xml:"error-severity"`
	Path       string `xml:"error-path"`
	Message    string `xml:"error-message"`
	SessionID  string `xml:"error-info>session-id"`
	BadElement string `xml:"error-info>bad-element"`
}

func parse(t testing.TB, s string) rpcReply {
	t.Helper()
	var r rpcReply
	if err := xml.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("reply %s: %v", s, err)
	}
	return r
}

// mustOK fails unless the reply is <ok/>.
func (c *client) mustOK(op string) {
	c.t.Helper()
	r := c.rpc(op)
	if p := parse(c.t, r); p.OK == nil || len(p.Errors) > 0 {
		c.t.Fatalf("%.300s:\n%s", op, r)
	}
}

// mustErr fails unless the reply is one rpc-error with tag.
func (c *client) mustErr(op, tag string) rpcError {
	c.t.Helper()
	r := c.rpc(op)
	p := parse(c.t, r)
	if len(p.Errors) == 0 || p.Errors[0].Tag != tag {
		c.t.Fatalf("%.300s: want error-tag %s, got\n%s", op, tag, r)
	}
	return p.Errors[0]
}

// data returns the content of the <data> of a reply.
func (c *client) data(op string) string {
	c.t.Helper()
	r := c.rpc(op)
	p := parse(c.t, r)
	if len(p.Errors) > 0 {
		c.t.Fatalf("%.300s:\n%s", op, r)
	}
	return p.Data.Inner
}

func (c *client) close() {
	c.conn.Close()
}
