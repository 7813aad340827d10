package netconf

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jnc "github.com/Juniper/go-netconf/netconf"
	"github.com/google/go-cmp/cmp"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	"golang.org/x/crypto/ssh"
)

func TestJuniperClient(t *testing.T) {
	ts := startServer(t, nil)
	s, err := jnc.DialSSH(ts.addr, jnc.SSHConfigPassword("alice", "secret"))
	if err != nil {
		t.Fatalf("DialSSH: %v", err)
	}
	defer s.Close()
	if s.SessionID == 0 {
		t.Errorf("session id 0")
	}
	if !cmp.Equal(s.ServerCapabilities, ts.srv.Capabilities()) {
		t.Errorf("server capabilities = %v, want %v", s.ServerCapabilities, ts.srv.Capabilities())
	}
	r, err := s.Exec(jnc.MethodGetConfig("running"))
	if err != nil || len(r.Errors) != 0 || !strings.Contains(r.RawReply, "<ok/>") {
		t.Fatalf("get-config: %v %+v", err, r)
	}
	// Requests of every length around a 4096-byte boundary: go-netconf pads
	// "]]>]]>" with spaces for some of them.
	for n := 3990; n < 4110; n++ {
		body := fmt.Sprintf(`<echo xmlns="%s">%s</echo>`, testNS, strings.Repeat("x", n))
		r, err := s.Exec(jnc.RawMethod(body))
		if err != nil || len(r.Errors) != 0 || !strings.Contains(r.RawReply, body) {
			t.Fatalf("echo of %d bytes: %v %.200s", n, err, r.RawReply)
		}
	}
	r, err = s.Exec(jnc.RawMethod(`<fail xmlns="` + testNS + `"/>`))
	if err == nil || len(r.Errors) != 1 || r.Errors[0].Tag != "lock-denied" || r.Errors[0].Type != "protocol" {
		t.Fatalf("fail: err %v, reply %+v", err, r)
	}
	r, err = s.Exec(jnc.RawMethod(`<whoami xmlns="` + testNS + `"/>`))
	if err != nil || !strings.Contains(r.RawReply, fmt.Sprintf("alice admin %d false", s.SessionID)) {
		t.Fatalf("whoami: %v %s", err, r.RawReply)
	}
}

func TestChunkedSession(t *testing.T) {
	ts := startServer(t, nil)
	c := dial11(t, ts.addr)
	if c.hello.SessionID == 0 || !c.hello.HasSessionID {
		t.Fatalf("server hello without session-id: %+v", c.hello)
	}
	for _, cp := range []string{ncxml.CapBase10, ncxml.CapBase11, "urn:ietf:params:netconf:capability:candidate:1.0"} {
		if !c.hello.Has(cp) {
			t.Errorf("server hello lacks %s", cp)
		}
	}
	// A request in several chunks; the reply must come as one chunk.
	req := `<rpc message-id="m1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><whoami xmlns="` + testNS + `"/></rpc>`
	c.writeRaw(fmt.Sprintf("\n#10\n%s\n#%d\n%s\n##\n", req[:10], len(req)-10, req[10:]))
	header, err := c.stdout.ReadString('\n')
	if err != nil || header != "\n" {
		t.Fatalf("chunk start %q, %v", header, err)
	}
	header, _ = c.stdout.ReadString('\n')
	var n int
	if _, err := fmt.Sscanf(header, "#%d\n", &n); err != nil {
		t.Fatalf("chunk header %q: %v", header, err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.stdout, body); err != nil {
		t.Fatal(err)
	}
	end := make([]byte, 4)
	if _, err := io.ReadFull(c.stdout, end); err != nil || string(end) != "\n##\n" {
		t.Fatalf("after the chunk %q (want end of chunks: one chunk per reply)", end)
	}
	want := fmt.Sprintf(`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="m1"><who xmlns="%s">alice admin %d true</who></rpc-reply>`, testNS, c.hello.SessionID)
	if string(body) != want {
		t.Errorf("reply\n got %s\nwant %s", body, want)
	}
}

func TestRequests(t *testing.T) {
	ts := startServer(t, nil)
	c := dial11(t, ts.addr)
	for _, tc := range []struct {
		desc string
		msg  string
		want string
	}{{
		desc: "nc prefix and extra attributes",
		msg:  `<nc:rpc xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:ex="urn:ex" message-id="9" ex:user-id="fred"><nc:get/></nc:rpc>`,
		want: `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="9" ex:user-id="fred" xmlns:ex="urn:ex"><ok/></rpc-reply>`,
	}, {
		desc: "missing message-id",
		msg:  `<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`,
		want: `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><rpc-error><error-type>rpc</error-type><error-tag>missing-attribute</error-tag><error-severity>error</error-severity><error-message xml:lang="en">&lt;rpc&gt; has no message-id attribute</error-message><error-info><bad-attribute>message-id</bad-attribute><bad-element>rpc</bad-element></error-info></rpc-error></rpc-reply>`,
	}, {
		desc: "handler panic",
		msg:  `<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="p"><panic xmlns="urn:pkiagent:test"/></rpc>`,
		want: `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="p"><rpc-error><error-type>application</error-type><error-tag>operation-failed</error-tag><error-severity>error</error-severity><error-message xml:lang="en">internal error while handling panic</error-message></rpc-error></rpc-reply>`,
	}, {
		desc: "notification before reply",
		msg:  `<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="n"><notify xmlns="urn:pkiagent:test"/></rpc>`,
		want: `<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><eventTime>1970-01-01T00:00:00Z</eventTime><event xmlns="urn:pkiagent:test"/></notification>` +
			`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="n"><ok/></rpc-reply>`,
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			c.write(tc.msg)
			var got string
			for len(got) < len(tc.want) {
				m, err := c.read()
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				got += m
			}
			if got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	// The session survived all of that.
	if r := parseReply(t, c.rpc("<get/>")); r.OK == nil {
		t.Errorf("get after errors: %+v", r)
	}
}

func TestMalformedClosesOnlyThatSession(t *testing.T) {
	const billionLaughs = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>&lol2;</get></rpc>`
	ts := startServer(t, func(c *Config) { c.MaxMessageSize = 64 << 10 })
	bystander := dial11(t, ts.addr)
	for _, tc := range []struct {
		desc    string
		base10  bool
		send    func(c *rawClient)
		wantTag string
	}{
		{desc: "billion laughs", send: func(c *rawClient) { c.write(billionLaughs) }, wantTag: "malformed-message"},
		{desc: "billion laughs base 1.0", base10: true, send: func(c *rawClient) { c.write(billionLaughs) }, wantTag: "operation-failed"},
		{desc: "external entity", send: func(c *rawClient) {
			c.write(`<!DOCTYPE rpc [<!ENTITY x SYSTEM "file:///etc/passwd">]><rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>&x;</get></rpc>`)
		}, wantTag: "malformed-message"},
		{desc: "not XML", send: func(c *rawClient) {
			c.write(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get></rpc>`)
		}, wantTag: "malformed-message"},
		{desc: "bad chunk header", send: func(c *rawClient) { c.writeRaw("\n#abc\n") }, wantTag: "malformed-message"},
		{desc: "zero chunk", send: func(c *rawClient) { c.writeRaw("\n#0\n") }, wantTag: "malformed-message"},
		{desc: "oversized chunked", send: func(c *rawClient) { c.writeRaw(fmt.Sprintf("\n#%d\n", 65<<10)) }, wantTag: "too-big"},
		{desc: "oversized base 1.0", base10: true, send: func(c *rawClient) { c.writeRaw(strings.Repeat("<a>", 30<<10)) }, wantTag: "too-big"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := dialRaw(t, ts.addr, passwordConfig("alice", "secret"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.conn.Close()
			if tc.base10 {
				c.sendHello(ncxml.CapBase10)
			} else {
				c.sendHello(ncxml.CapBase11)
				c.fr.SetChunked()
				c.fw.SetChunked()
			}
			tc.send(c)
			m, err := c.read()
			if err != nil {
				t.Fatalf("no error reply: %v", err)
			}
			r := parseReply(t, m)
			if len(r.Errors) != 1 || r.Errors[0].Tag != tc.wantTag {
				t.Errorf("reply %s, want error-tag %s", m, tc.wantTag)
			}
			if err := c.expectClosed(5 * time.Second); err != nil {
				t.Error(err)
			}
			if r := parseReply(t, bystander.rpc("<get/>")); r.OK == nil {
				t.Errorf("other session after %s: %+v", tc.desc, r)
			}
		})
	}
}

func TestStalledClientTimedOut(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	c := dial11(t, ts.addr)
	start := time.Now()
	c.writeRaw("\n#100\n<rpc message-id=") // half a chunk, then nothing
	if err := c.expectClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
	if term := ts.handler.waitEnd(t, c.hello.SessionID); term.Reason != TermTimeout {
		t.Errorf("termination %+v, want timeout", term)
	}
}

func TestHelloTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.HelloTimeout = 300 * time.Millisecond })
	c, err := dialRaw(t, ts.addr, passwordConfig("alice", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.conn.Close()
	if err := c.expectClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestBadHellos(t *testing.T) {
	ts := startServer(t, nil)
	for _, tc := range []struct {
		desc  string
		hello string
	}{
		{"session-id from client", `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities><session-id>5</session-id></hello>`},
		{"no base capability", `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:x</capability></capabilities></hello>`},
		{"not a hello", `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := dialRaw(t, ts.addr, passwordConfig("alice", "secret"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.conn.Close()
			c.write(tc.hello)
			if err := c.expectClosed(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCloseAndKillSession(t *testing.T) {
	ts := startServer(t, nil)
	a, b := dial11(t, ts.addr), dial11(t, ts.addr)
	if a.hello.SessionID == b.hello.SessionID {
		t.Fatalf("two sessions with id %d", a.hello.SessionID)
	}
	if r := parseReply(t, a.rpc(fmt.Sprintf(`<kill xmlns="%s"><id>%d</id></kill>`, testNS, b.hello.SessionID))); r.OK == nil {
		t.Fatalf("kill: %+v", r)
	}
	if err := b.expectClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if term := ts.handler.waitEnd(t, b.hello.SessionID); term != (Termination{Reason: TermKilled, KilledBy: a.hello.SessionID}) {
		t.Errorf("killed session ended with %+v", term)
	}
	if r := parseReply(t, a.rpc(`<close-session/>`)); r.OK == nil || r.MessageID != "3" {
		t.Fatalf("close-session: %+v", r)
	}
	if err := a.expectClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if term := ts.handler.waitEnd(t, a.hello.SessionID); term.Reason != TermClosed {
		t.Errorf("closed session ended with %+v", term)
	}
}

func TestMaxSessions(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxSessions = 2 })
	a := dial11(t, ts.addr)
	dial11(t, ts.addr)
	_, err := dialRaw(t, ts.addr, passwordConfig("alice", "secret"))
	if err == nil || !strings.Contains(err.Error(), "too many NETCONF sessions (limit 2)") {
		t.Fatalf("third session: %v, want refusal naming the limit", err)
	}
	a.rpc("<close-session/>")
	if err := a.expectClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	ts.handler.waitEnd(t, a.hello.SessionID)
	dialAgain(t, ts.addr, "session after one closed")
}

func TestHostKeyReused(t *testing.T) {
	ts := startServer(t, nil)
	hostKey := func() []byte {
		var got []byte
		cfg := passwordConfig("alice", "secret")
		cfg.HostKeyCallback = func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key.Marshal()
			return nil
		}
		c, err := ssh.Dial("tcp", ts.addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return got
	}
	first := hostKey()
	fi, err := os.Stat(filepath.Join(ts.dir, HostKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(filepath.Join(ts.dir, HostKeyFile))
	if !bytes.HasPrefix(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Errorf("host key is not in OpenSSH format")
	}
	ts.stop()
	ts.start(t, nil)
	if second := hostKey(); !bytes.Equal(first, second) {
		t.Errorf("host key changed across restarts")
	}
}

func TestAuthentication(t *testing.T) {
	ts := startServer(t, nil)
	authorized := newEd25519Signer(t)
	restricted := newEd25519Signer(t)
	stranger := newEd25519Signer(t)
	keys := string(ssh.MarshalAuthorizedKey(authorized.PublicKey())) +
		"# comment\n\nnot a key\n" +
		`principals="alice" ` + string(ssh.MarshalAuthorizedKey(restricted.PublicKey()))
	if err := os.WriteFile(filepath.Join(ts.dir, AuthorizedKeysFile), []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	keyConfig := func(user string, s ssh.Signer) *ssh.ClientConfig {
		return &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(s)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
	}
	for _, tc := range []struct {
		desc    string
		cfg     *ssh.ClientConfig
		wantWho string // user and role; "" means refused
	}{
		{"password", passwordConfig("alice", "secret"), "alice admin"},
		{"viewer password", passwordConfig("victor", "pw"), "victor viewer"},
		{"wrong password", passwordConfig("alice", "nope"), ""},
		{"unknown user", passwordConfig("mallory", "secret"), ""},
		{"public key", keyConfig("keyuser", authorized), "keyuser operator"},
		{"public key of user without role", keyConfig("nobody", authorized), ""},
		{"key restricted to alice used by alice", keyConfig("alice", restricted), "alice operator"},
		{"key restricted to alice used by keyuser", keyConfig("keyuser", restricted), ""},
		{"unlisted key", keyConfig("keyuser", stranger), ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := dialRaw(t, ts.addr, tc.cfg)
			if tc.wantWho == "" {
				if err == nil {
					c.conn.Close()
					t.Fatal("authentication succeeded, want refusal")
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.conn.Close()
			c.sendHello(ncxml.CapBase10)
			if r := c.rpc(`<whoami xmlns="` + testNS + `"/>`); !strings.Contains(r, tc.wantWho+" ") {
				t.Errorf("whoami = %s, want %q", r, tc.wantWho)
			}
		})
	}
}

func TestShutdownEndsSessions(t *testing.T) {
	ts := startServer(t, nil)
	var clients []*rawClient
	for range 3 {
		clients = append(clients, dial11(t, ts.addr))
	}
	ts.stop()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			if err := c.expectClosed(5 * time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := len(ts.srv.Sessions()); got != 0 {
		t.Errorf("%d sessions left after shutdown", got)
	}
}

func TestSendAfterEnd(t *testing.T) {
	ts := startServer(t, nil)
	c := dial11(t, ts.addr)
	var sess *Session
	for _, s := range ts.srv.Sessions() {
		if s.ID() == c.hello.SessionID {
			sess = s
		}
	}
	if sess == nil {
		t.Fatal("session not listed")
	}
	c.rpc("<close-session/>")
	ts.handler.waitEnd(t, sess.ID())
	if err := sess.Send(t.Context(), ncxml.Notification{Body: []byte("<x/>")}); err == nil {
		t.Error("Send on an ended session succeeded")
	}
	if sess.Context().Err() == nil {
		t.Error("session context not cancelled at the end")
	}
}
