package netconf

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/northbound/netconf/framing"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	"golang.org/x/crypto/ssh"
)

const testNS = "urn:pkiagent:test"

// fakeAuth accepts user "alice" (role admin) with password "secret" and
// "victor" (role viewer) with "pw".
type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, user, password string, _ net.Addr) (string, error) {
	switch {
	case user == "alice" && password == "secret":
		return "admin", nil
	case user == "victor" && password == "pw":
		return "viewer", nil
	}
	return "", errors.New("bad user or password")
}

func keyRole(user string) (string, error) {
	if user == "keyuser" || user == "alice" {
		return "operator", nil
	}
	return "", fmt.Errorf("user %q unknown", user)
}

// testHandler answers "echo" (output: the request element), "whoami"
// (output: user role session-id), "notify" (a notification, then ok),
// "kill" (kill-session of the id in the body), "fail" (an rpc-error),
// "panic", and <ok/> to everything else. It records session ends.
type testHandler struct {
	mu     sync.Mutex
	starts []uint32
	ends   map[uint32]Termination
	endCh  chan uint32
}

func newTestHandler() *testHandler {
	return &testHandler{ends: make(map[uint32]Termination), endCh: make(chan uint32, 100)}
}

func (h *testHandler) Handle(ctx context.Context, s *Session, req *ncxml.Request) ncxml.Reply {
	switch req.Operation.Local {
	case "echo":
		return ncxml.Output(req.Element)
	case "whoami":
		return ncxml.Output([]byte(fmt.Sprintf(`<who xmlns="%s">%s %s %d %v</who>`, testNS, s.Username(), s.Role(), s.ID(), s.Base11())))
	case "notify":
		err := s.Send(ctx, ncxml.Notification{EventTime: time.Unix(0, 0), Body: []byte(`<event xmlns="` + testNS + `"/>`)})
		if err != nil {
			return ncxml.ErrorFrom(err, "send failed")
		}
		return ncxml.OK()
	case "kill":
		var v struct {
			ID uint32 `xml:"id"`
		}
		if err := req.Unmarshal(&v); err != nil {
			return ncxml.Error(ncxml.BadElement(ncxml.Protocol, "id", err.Error()))
		}
		if err := s.KillSession(v.ID); err != nil {
			return ncxml.Error(ncxml.InvalidValue(ncxml.Protocol, err.Error()))
		}
		return ncxml.OK()
	case "fail":
		return ncxml.Error(ncxml.LockDenied(7, "running is locked by session 7"))
	case "panic":
		panic("boom")
	}
	return ncxml.OK()
}

func (h *testHandler) SessionStart(s *Session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.starts = append(h.starts, s.ID())
	return nil
}

func (h *testHandler) SessionEnd(s *Session, t Termination) {
	h.mu.Lock()
	h.ends[s.ID()] = t
	h.mu.Unlock()
	h.endCh <- s.ID()
}

// waitEnd waits for session id to end and returns its termination.
func (h *testHandler) waitEnd(t *testing.T, id uint32) Termination {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		h.mu.Lock()
		term, ok := h.ends[id]
		h.mu.Unlock()
		if ok {
			return term
		}
		select {
		case <-h.endCh:
		case <-deadline:
			t.Fatalf("session %d did not end", id)
		}
	}
}

type testServer struct {
	srv     *Server
	addr    string
	dir     string
	handler *testHandler
	stop    func()
}

func startServer(t testing.TB, mod func(*Config)) *testServer {
	t.Helper()
	ts := &testServer{dir: t.TempDir(), handler: newTestHandler()}
	ts.start(t, mod)
	return ts
}

func (ts *testServer) start(t testing.TB, mod func(*Config)) {
	t.Helper()
	cfg := Config{
		StateDir:      ts.dir,
		Handler:       ts.handler,
		Authenticator: fakeAuth{},
		KeyRole:       keyRole,
		Capabilities:  []string{"urn:ietf:params:netconf:capability:candidate:1.0"},
		HelloTimeout:  5 * time.Second,
		IdleTimeout:   10 * time.Second,
		Logger:        slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	ts.srv, ts.addr = srv, ln.Addr().String()
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(ts.stop)
}

func passwordConfig(user, pw string) *ssh.ClientConfig {
	return &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password(pw)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
}

// rawClient speaks NETCONF by hand over an SSH channel.
type rawClient struct {
	t      testing.TB
	conn   *ssh.Client
	sess   *ssh.Session
	stdin  io.WriteCloser
	stdout *bufio.Reader
	fr     *framing.Reader
	fw     *framing.Writer
	hello  *ncxml.Hello
	nextID int
}

// dialAgain dials addr as alice until a session is let in (a session's
// slot is released once its channel is gone), failing the test as what
// after 5 s.
func dialAgain(t testing.TB, addr, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dialRaw(t, addr, passwordConfig("alice", "secret"))
		if err == nil {
			c.conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialRaw opens a session and reads the server hello, without sending one.
func dialRaw(t testing.TB, addr string, cfg *ssh.ClientConfig) (*rawClient, error) {
	conn, err := ssh.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	sess, err := conn.NewSession()
	if err != nil {
		conn.Close()
		return nil, err
	}
	stdin, _ := sess.StdinPipe()
	stdout, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("netconf"); err != nil {
		conn.Close()
		return nil, err
	}
	c := &rawClient{t: t, conn: conn, sess: sess, stdin: stdin, stdout: bufio.NewReader(stdout)}
	c.fr = framing.NewReader(c.stdout, 0)
	c.fw = framing.NewWriter(stdin)
	msg, err := c.fr.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read server hello: %w", err)
	}
	if c.hello, err = ncxml.ParseHello(msg); err != nil {
		conn.Close()
		return nil, fmt.Errorf("parse server hello %s: %w", msg, err)
	}
	return c, nil
}

// dial11 opens a base:1.1 session.
func dial11(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := dialRaw(t, addr, passwordConfig("alice", "secret"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.conn.Close() })
	c.sendHello(ncxml.CapBase10, ncxml.CapBase11)
	c.fr.SetChunked()
	c.fw.SetChunked()
	c.rpc("<get/>") // the session is registered once this is answered
	return c
}

func (c *rawClient) sendHello(caps ...string) {
	var b strings.Builder
	b.WriteString(`<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>`)
	for _, cp := range caps {
		b.WriteString("<capability>" + cp + "</capability>")
	}
	b.WriteString("</capabilities></hello>")
	c.write(b.String())
}

func (c *rawClient) write(msg string) {
	c.t.Helper()
	if err := c.fw.WriteMessage([]byte(msg)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) writeRaw(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) read() (string, error) {
	m, err := c.fr.ReadMessage()
	return string(m), err
}

// rpc sends op in an rpc with a fresh message-id and returns the reply.
func (c *rawClient) rpc(op string) string {
	c.t.Helper()
	c.nextID++
	c.write(`<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="` + strconv.Itoa(c.nextID) + `">` + op + `</rpc>`)
	r, err := c.read()
	if err != nil {
		c.t.Fatalf("read reply to %s: %v", op, err)
	}
	return r
}

// expectClosed checks that the server ends the session: EOF before any
// further message, within timeout.
func (c *rawClient) expectClosed(timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		m, err := c.read()
		if err == nil {
			err = fmt.Errorf("unexpected message %s", m)
		} else if errors.Is(err, io.EOF) {
			err = nil
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		c.conn.Close()
		return fmt.Errorf("session still open after %v", timeout)
	}
}

// reply is a decoded rpc-reply.
type reply struct {
	XMLName   xml.Name
	MessageID string     `xml:"message-id,attr"`
	OK        *struct{}  `xml:"ok"`
	Errors    []rpcError `xml:"rpc-error"`
	Inner     string     `xml:",innerxml"`
}

type rpcError struct {
	Type         string `xml:"error-type"`
	Tag          string `xml:"error-tag"`
	Severity     string `xml:"error-severity"`
	Message      string `xml:"error-message"`
	SessionID    string `xml:"error-info>session-id"`
	BadAttribute string `xml:"error-info>bad-attribute"`
	BadElement   string `xml:"error-info>bad-element"`
}

func parseReply(t testing.TB, s string) reply {
	t.Helper()
	var r reply
	if err := xml.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("parse reply %s: %v", s, err)
	}
	if r.XMLName != (xml.Name{Space: ncxml.BaseNS, Local: "rpc-reply"}) {
		t.Fatalf("reply root %v in %s", r.XMLName, s)
	}
	return r
}

func newEd25519Signer(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
