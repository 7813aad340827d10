package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pkiagent/pkiagent/northbound/netconf/framing"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

const adminPassword = "test-password" // runAgentBinary sets it

// startAgent starts the agent with NETCONF on a free loopback port and
// returns that address; the agent is stopped at cleanup.
func startAgent(t *testing.T) string {
	t.Helper()
	p := runAgentBinary(t, filepath.Join(t.TempDir(), "state"))
	return logAttr(p.logged(t, "serving NETCONF"), "addr")
}

// TestNETCONFEndToEnd drives the real agent (datastore, PKI engine, users)
// over NETCONF with a base:1.1 client, ncclient and yangcli.
func TestNETCONFEndToEnd(t *testing.T) {
	addr := startAgent(t)
	host, port, _ := net.SplitHostPort(addr)

	t.Run("raw base:1.1", func(t *testing.T) {
		c := dialNETCONF(t, addr)
		const ns = `xmlns="urn:pkiagent:yang:pki-authority"`
		for _, step := range []struct{ op, want string }{
			{`<lock><target><candidate/></target></lock>`, "<ok/>"},
			{`<edit-config><target><candidate/></target><config><authority ` + ns + `><router><name>e2e</name><certificate-failure-action>fail-hard</certificate-failure-action></router></authority></config></edit-config>`, "<ok/>"},
			{`<validate><source><candidate/></source></validate>`, "<ok/>"},
			{`<commit/>`, "<ok/>"},
			{`<unlock><target><candidate/></target></unlock>`, "<ok/>"},
			{`<get-config><source><running/></source><filter><authority ` + ns + `><router><name>e2e</name></router></authority></filter></get-config>`, "<certificate-failure-action>fail-hard</certificate-failure-action>"},
			{`<generate-private-key ` + ns + `><name>e2e-key</name><algorithm>ecc</algorithm><ecc-curve>secp384r1</ecc-curve></generate-private-key>`, ">e2e-key</name>"},
			{`<get><filter><certificates ` + ns + `/></filter></get>`, ">e2e-key</name>"},
			{`<generate-private-key ` + ns + `><name>e2e-key2</name><algorithm>dsa</algorithm></generate-private-key>`, "<error-tag>invalid-value</error-tag>"},
			{`<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>pki-authority</identifier></get-schema>`, "module pki-authority {"},
		} {
			if got := c.rpc(step.op); !strings.Contains(got, step.want) {
				t.Fatalf("%.120s:\n got %.600s\nwant %s", step.op, got, step.want)
			}
		}
	})

	t.Run("ncclient", func(t *testing.T) {
		if err := exec.Command("/usr/bin/python3", "-c", "import ncclient").Run(); err != nil {
			t.Skipf("/usr/bin/python3 cannot import ncclient (apt-get install python3-ncclient): %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "/usr/bin/python3", "testdata/ncclient_e2e.py", host, port, "admin", adminPassword).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ALL OK") {
			t.Fatalf("ncclient script: %v\n%s", err, out)
		}
	})

	t.Run("yangcli", func(t *testing.T) {
		if _, err := exec.LookPath("yangcli"); err != nil {
			t.Skip("yangcli is not installed (apt-get install yangcli)")
		}
		if _, err := exec.LookPath("script"); err != nil {
			t.Skip("script (bsdutils) is not installed; yangcli needs a terminal")
		}
		scriptFile := filepath.Join(t.TempDir(), "edit.yc")
		os.WriteFile(scriptFile, []byte("merge /authority/router/name value=yc1\ncommit\nsget-config /authority/router source=running\n"), 0o600)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmdline := "yangcli --server=" + host + " --ncport=" + port + " --user=admin --password=" + adminPassword +
			" --batch-mode --run-script=" + scriptFile
		out, err := exec.CommandContext(ctx, "script", "-qec", cmdline, "/dev/null").CombinedOutput()
		s := string(out)
		if err != nil || !strings.Contains(s, "RPC OK Reply") || !strings.Contains(s, "router yc1") {
			t.Fatalf("yangcli: %v\n%s", err, s)
		}
	})
}

type ncClient struct {
	t  *testing.T
	fr *framing.Reader
	fw *framing.Writer
	id int
}

func dialNETCONF(t *testing.T, addr string) *ncClient {
	return dialNETCONFAs(t, addr, "admin", adminPassword)
}

// dialNETCONFAs opens a base:1.1 session as user.
func dialNETCONFAs(t *testing.T, addr, user, password string) *ncClient {
	conn, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("ssh: %v", err)
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
	c := &ncClient{t: t, fr: framing.NewReader(bufio.NewReader(stdout), 0), fw: framing.NewWriter(stdin)}
	if _, err := c.fr.ReadMessage(); err != nil {
		t.Fatalf("hello: %v", err)
	}
	c.fw.WriteMessage([]byte(`<hello xmlns="` + ncxml.BaseNS + `"><capabilities><capability>` + ncxml.CapBase11 + `</capability></capabilities></hello>`))
	c.fr.SetChunked()
	c.fw.SetChunked()
	return c
}

func (c *ncClient) rpc(op string) string {
	c.t.Helper()
	c.id++
	if err := c.fw.WriteMessage([]byte(`<rpc xmlns="` + ncxml.BaseNS + `" message-id="` + strconv.Itoa(c.id) + `">` + op + `</rpc>`)); err != nil {
		c.t.Fatal(err)
	}
	m, err := c.fr.ReadMessage()
	if err != nil {
		c.t.Fatalf("reply: %v", err)
	}
	return string(m)
}

// must sends op and returns the reply, failing the test unless it holds
// want.
func (c *ncClient) must(op, want string) string {
	c.t.Helper()
	got := c.rpc(op)
	if !strings.Contains(got, want) {
		c.t.Fatalf("%.160s:\n got %.800s\nwant %s", op, got, want)
	}
	return got
}
