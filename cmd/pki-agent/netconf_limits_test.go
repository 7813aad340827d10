package main

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/northbound/netconf"
)

func TestNETCONFSessionFlags(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.netconfIdleTimeout != 10*time.Minute || o.netconfMaxPerUser != 8 {
		t.Errorf("defaults: idle %v, per user %d; want 10m, 8", o.netconfIdleTimeout, o.netconfMaxPerUser)
	}
	if idleTimeout(0) >= 0 || idleTimeout(time.Minute) != time.Minute {
		t.Errorf("--netconf-idle-timeout 0 must disable the timeout (negative in netconf.Config)")
	}
	for _, args := range [][]string{{"--netconf-idle-timeout", "-1s"}, {"--netconf-max-sessions-per-user", "0"}} {
		if _, err := parseFlags(args); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v, want an error naming the flag", args, err)
		}
	}
	if netconf.DefaultIdleTimeout != 10*time.Minute {
		t.Errorf("netconf.DefaultIdleTimeout = %v", netconf.DefaultIdleTimeout)
	}
}

// TestNETCONFIdleTimeoutFlag: with --netconf-idle-timeout 1s the binary
// closes a silent session after about a second, while a session with a
// notification subscription stays open.
func TestNETCONFIdleTimeoutFlag(t *testing.T) {
	p := runAgentBinary(t, filepath.Join(t.TempDir(), "state"), "--netconf-idle-timeout", "1s")
	addr := logAttr(p.logged(t, "serving NETCONF"), "addr")
	idle := dialNETCONF(t, addr)
	sub := dialNETCONF(t, addr)
	if got := idle.rpc(`<get-config><source><running/></source></get-config>`); !strings.Contains(got, "<data") {
		t.Fatal(got)
	}
	if got := sub.rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`); !strings.Contains(got, "<ok/>") {
		t.Fatal(got)
	}
	start := time.Now()
	_, err := idle.fr.ReadMessage() // nothing comes but the end of the session
	if !errors.Is(err, io.EOF) {
		t.Fatalf("idle session: %v, want EOF", err)
	}
	if d := time.Since(start); d < 800*time.Millisecond || d > 20*time.Second {
		t.Errorf("idle session closed after %v, want about 1s", d)
	}
	time.Sleep(time.Second)
	// Still open: the subscribed session answers (its notifications of the
	// other session's end may come first).
	sub.id++
	if err := sub.fw.WriteMessage([]byte(`<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="x"><get-config><source><running/></source></get-config></rpc>`)); err != nil {
		t.Fatalf("subscribed session closed: %v", err)
	}
	for {
		m, err := sub.fr.ReadMessage()
		if err != nil {
			t.Fatalf("subscribed session closed while idle: %v", err)
		}
		if strings.Contains(string(m), "<rpc-reply") {
			break
		}
	}
	p.logged(t, "netconf: session timed out")
}
