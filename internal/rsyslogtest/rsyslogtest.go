// Package rsyslogtest runs a real rsyslogd (Debian rsyslog, with
// rsyslog-gnutls for TLS) for tests: as nobody, on 127.0.0.1, with a
// configuration of its own.
package rsyslogtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// Rsyslog is a running rsyslogd with UDP, TCP (octet counting or not) and
// TLS inputs, each written to its own file in RFC 5424 form
// (RSYSLOG_SyslogProtocol23Format), so that what it parsed can be parsed
// back.
type Rsyslog struct {
	dir           string
	UDP, TCP, TLS string // host:port
	CA            []byte // PEM of the CA of its TLS certificate
}

// FreePort returns a port of 127.0.0.1 free a moment ago.
func FreePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs rsyslogd until the end of the test.
func Start(t *testing.T) *Rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		t.Fatalf("rsyslogd not installed (make test installs rsyslog): %v", err)
	}
	// nobody must reach the directory: not under t.TempDir (0700).
	dir, err := os.MkdirTemp("", "rsyslog")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	g := testpki.New(time.Now())
	ca := testpki.Must(g.Root(testpki.Options{CN: "syslog test CA"}))
	srv := testpki.Must(g.Issue(ca, testpki.Options{CN: "localhost", DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}))
	for name, b := range map[string][]byte{"ca.pem": ca.PEM(), "server.pem": srv.PEM(), "server.key": srv.KeyPEM()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &Rsyslog{dir: dir, CA: ca.PEM()}
	up, tp, sp := FreePort(t, "udp"), FreePort(t, "tcp"), FreePort(t, "tcp")
	r.UDP, r.TCP, r.TLS = fmt.Sprintf("127.0.0.1:%d", up), fmt.Sprintf("127.0.0.1:%d", tp), fmt.Sprintf("127.0.0.1:%d", sp)
	conf := fmt.Sprintf(`global(workDirectory="%[1]s" maxMessageSize="64k"
  defaultNetstreamDriverCAFile="%[1]s/ca.pem" defaultNetstreamDriverCertFile="%[1]s/server.pem" defaultNetstreamDriverKeyFile="%[1]s/server.key")
module(load="imudp")
module(load="imtcp" maxSessions="16")
input(type="imudp" address="127.0.0.1" port="%[2]d" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="%[3]d" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="%[4]d" ruleset="tls" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
ruleset(name="udp") { action(type="omfile" file="%[1]s/udp.log" template="RSYSLOG_SyslogProtocol23Format") }
ruleset(name="tcp") { action(type="omfile" file="%[1]s/tcp.log" template="RSYSLOG_SyslogProtocol23Format") }
ruleset(name="tls") { action(type="omfile" file="%[1]s/tls.log" template="RSYSLOG_SyslogProtocol23Format") }
`, dir, up, tp, sp)
	cf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-N1", "-f", cf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1: %v\n%s", err, out)
	}
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", bin, "-n", "-f", cf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for _, addr := range []string{r.TCP, r.TLS} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd does not listen on %s: %v\n%s", addr, err, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return r
}

// Received waits until the file of transport ("udp", "tcp" or "tls")
// holds n messages and returns them parsed with go-syslog's RFC 5424
// parser.
func (r *Rsyslog) Received(t *testing.T, transport string, n int) []*rfc5424.SyslogMessage {
	t.Helper()
	return r.Await(t, transport, fmt.Sprintf("%d messages", n), func(ms []*rfc5424.SyslogMessage) bool { return len(ms) >= n })
}

// Await waits up to 10 s until the messages of transport, parsed with
// go-syslog's RFC 5424 parser, satisfy ok, and returns them.
func (r *Rsyslog) Await(t *testing.T, transport, want string, ok func([]*rfc5424.SyslogMessage) bool) []*rfc5424.SyslogMessage {
	t.Helper()
	path := filepath.Join(r.dir, transport+".log")
	deadline := time.Now().Add(10 * time.Second)
	p := rfc5424.NewParser()
	for {
		var lines []string
		var out []*rfc5424.SyslogMessage
		if b, err := os.ReadFile(path); err == nil {
			for l := range strings.Lines(string(b)) {
				if !strings.HasSuffix(l, "\n") {
					break // being written
				}
				l = strings.TrimSuffix(l, "\n")
				lines = append(lines, l)
				m, err := p.Parse([]byte(l))
				if err != nil {
					t.Fatalf("rsyslog wrote a line that is not RFC 5424 (%v):\n%s", err, l)
				}
				out = append(out, m.(*rfc5424.SyslogMessage))
			}
		}
		if ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %s; received %d:\n%s", transport, want, len(lines), strings.Join(lines, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
