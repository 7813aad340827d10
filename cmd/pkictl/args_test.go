package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBadArgumentsSendNothing: every malformed command line exits 2 with
// one line on stderr, and nothing reaches the agent's addresses.
func TestBadArgumentsSendNothing(t *testing.T) {
	var conns atomic.Int32
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "with-key.pem")
	os.WriteFile(keyFile, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"), 0o600)
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	vars := map[string]string{"PKICTL_ADDRESS": l.Addr().String(), "PKICTL_NETCONF": l.Addr().String(), "PKICTL_PASSWORD": "x", "PKICTL_NEW_PASSWORD": "short"}
	tests := []struct {
		desc string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"unknown flag", []string{"show", "alarms", "--nope"}},
		{"extra argument", []string{"show", "alarms", "extra"}},
		{"bad output", []string{"-o", "xml", "show", "alarms"}},
		{"key without name", []string{"key", "generate"}},
		{"key bad name", []string{"key", "generate", "a/b"}},
		{"key name too long", []string{"key", "generate", strings.Repeat("k", 65)}},
		{"key bad algorithm", []string{"key", "generate", "k", "--algorithm", "dsa"}},
		{"rsa bad size", []string{"key", "generate", "k", "--algorithm", "rsa", "--size", "2100"}},
		{"rsa too big", []string{"key", "generate", "k", "--algorithm", "rsa", "--size", "8192"}},
		{"ecc with size", []string{"key", "generate", "k", "--size", "2048"}},
		{"bad curve", []string{"key", "generate", "k", "--curve", "p256"}},
		{"rsa with curve", []string{"key", "generate", "k", "--algorithm", "rsa", "--curve", "secp256r1"}},
		{"bad storage", []string{"key", "generate", "k", "--storage", "hsm"}},
		{"csr without cn", []string{"csr", "k"}},
		{"csr cn too long", []string{"csr", "k", "--cn", strings.Repeat("c", 65)}},
		{"csr bad san kind", []string{"csr", "k", "--cn", "a", "--san", "mail:x"}},
		{"csr email san", []string{"csr", "k", "--cn", "a", "--san", "email:a@b.c"}},
		{"csr bad ip", []string{"csr", "k", "--cn", "a", "--san", "ip:300.1.1.1"}},
		{"csr bad dns", []string{"csr", "k", "--cn", "a", "--san", "dns:a b"}},
		{"csr relative uri", []string{"csr", "k", "--cn", "a", "--san", "uri:no-scheme"}},
		{"csr bad country", []string{"csr", "k", "--cn", "a", "--country", "nl"}},
		{"csr bad days", []string{"csr", "k", "--cn", "a", "--days", "5000"}},
		{"import without file", []string{"import", "k"}},
		{"import missing file", []string{"import", "k", filepath.Join(dir, "missing.pem")}},
		{"import private key", []string{"import", "k", keyFile}},
		{"import not PEM", []string{"import", "k", notPEM}},
		{"crl refresh bad url", []string{"crl", "refresh", "ftp://x/y.crl"}},
		{"crl revoked without url", []string{"show", "certificate", "crl", "--revoked"}},
		{"peer validate short", []string{"peer", "validate", "r1", "p1"}},
		{"peer validate key file", []string{"peer", "validate", "r1", "p1", keyFile}},
		{"config set no value", []string{"config", "set", "/authority/crl-settings/http-proxy"}},
		{"config set relative path", []string{"config", "set", "authority/x", "1"}},
		{"config set unclosed key", []string{"config", "set", "/authority/router[name=r1/peer-validation", "true"}},
		{"config set other root", []string{"config", "set", "/alarms/alarm[id=x]/text", "y"}},
		{"config set key file", []string{"config", "set", "/authority/trusted-ca-certificate[name=a]/content", "@" + keyFile}},
		{"config delete no path", []string{"config", "delete"}},
		{"commit bad confirmed", []string{"config", "commit", "--confirmed", "-1"}},
		{"commit confirmed not a number", []string{"config", "commit", "--confirmed", "soon"}},
		{"watch bad severity", []string{"watch", "alarms", "--severity", "warning"}},
		{"watch negative count", []string{"watch", "alarms", "--count", "-1"}},
		{"audit bad since", []string{"show", "audit", "--since", "yesterday", "--state-dir", dir}},
		{"user add bad role", []string{"user", "add", "bob", "--role", "root"}},
		{"user add weak password", []string{"user", "add", "bob", "--role", "viewer"}},
		{"user bad name", []string{"user", "delete", "b/ob"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, strings.NewReader(""), &out, &errb, func(k string) string { return vars[k] })
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, errb.String())
			}
			if !strings.HasPrefix(errb.String(), "pkictl: ") || strings.Contains(errb.String(), "goroutine") {
				t.Fatalf("stderr: %q", errb.String())
			}
		})
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("%d connections reached the agent's address", n)
	}
}

// TestHelpExitsZero: pkictl --help and CMD --help print usage and exit 0.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"show", "certificate", "--help"}, {"key", "generate", "-h"}, {"help", "csr"}, {"config", "commit", "--help"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errb, func(string) string { return "" }); code != 0 || !strings.Contains(out.String(), "Usage: pkictl") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
	}
}

// TestConnectionErrorsAreOneLine: agent down, wrong CA, wrong password:
// one line each on stderr, exit 1.
func TestConnectionErrorsAreOneLine(t *testing.T) {
	a := startAgent(t)
	otherCA := filepath.Join(t.TempDir(), "ca.pem")
	labCA(t, filepath.Dir(otherCA))
	down := freePort(t)
	tests := []struct {
		desc string
		env  map[string]string
		args []string
		want string
	}{
		{"gNMI down", map[string]string{"PKICTL_ADDRESS": down}, []string{"show", "alarms"}, "connection refused; is the agent running there?"},
		{"NETCONF down", map[string]string{"PKICTL_NETCONF": down}, []string{"key", "generate", "k"}, "connection refused; is the agent running there?"},
		{"wrong CA", map[string]string{"PKICTL_TLS_CA": otherCA}, []string{"show", "alarms"}, "not trusted by --tls-ca"},
		{"wrong password gNMI", map[string]string{"PKICTL_PASSWORD": "wrong-password"}, []string{"show", "alarms"}, "invalid user name or password"},
		{"wrong password NETCONF", map[string]string{"PKICTL_PASSWORD": "wrong-password"}, []string{"csr", "k", "--cn", "x"}, "login refused for user admin"},
		{"unknown host", map[string]string{"PKICTL_ADDRESS": "no-such-host.invalid:9339"}, []string{"show", "alarms"}, "unknown host"},
		{"agent refuses", nil, []string{"import", "nokey", otherCA}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := a.pkictl(t, "", tc.env, tc.args...)
			if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 || (tc.want != "" && !strings.Contains(r.stderr, tc.want)) {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
		})
	}
}

// TestProgressOnlyOnATerminal: a long operation's progress line is drawn
// (and cleared) when stderr is a terminal, and nothing is written when it
// is piped.
func TestProgressOnlyOnATerminal(t *testing.T) {
	for _, tty := range []bool{false, true} {
		var errb bytes.Buffer
		e := &env{stderr: &errb, progress: tty}
		stop := e.startProgress("generating RSA 4096 key k (file)")
		time.Sleep(600 * time.Millisecond)
		stop()
		got := errb.String()
		switch {
		case !tty && got != "":
			t.Errorf("piped: %q", got)
		case tty && (!strings.Contains(got, "generating RSA 4096 key k (file) (0s)") || !strings.HasSuffix(got, "\r\033[K")):
			t.Errorf("terminal: %q", got)
		}
	}
}
