package netconf

import (
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
)

// TestSessionsPerUser: a user at MaxSessionsPerUser has a further session
// refused with a message naming the user and the limit, while another user
// still gets in; closing one session lets the user in again.
func TestSessionsPerUser(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxSessionsPerUser = 2 })
	a := dial11(t, ts.addr)
	dial11(t, ts.addr)
	_, err := dialRaw(t, ts.addr, passwordConfig("alice", "secret"))
	if err == nil || !strings.Contains(err.Error(), "alice") || !strings.Contains(err.Error(), "already has 2 NETCONF sessions") {
		t.Fatalf("third session of alice: %v, want a refusal naming the user and the limit", err)
	}
	v, err := dialRaw(t, ts.addr, passwordConfig("victor", "pw"))
	if err != nil {
		t.Fatalf("another user at alice's limit: %v", err)
	}
	v.conn.Close()
	a.rpc("<close-session/>")
	if err := a.expectClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	ts.handler.waitEnd(t, a.hello.SessionID)
	dialAgain(t, ts.addr, "alice after closing a session")
}

// TestDefaultMaxSessionsPerUser: 8 sessions of one user are served, the
// ninth is refused.
func TestDefaultMaxSessionsPerUser(t *testing.T) {
	ts := startServer(t, nil)
	for range DefaultMaxSessionsPerUser {
		dial11(t, ts.addr)
	}
	if _, err := dialRaw(t, ts.addr, passwordConfig("alice", "secret")); err == nil || !strings.Contains(err.Error(), "already has 8 NETCONF sessions") {
		t.Fatalf("ninth session: %v", err)
	}
}

// settle waits until the fake clock holds exactly n armed timers for a
// few polls in a row: the session is back in its read, with its idle
// timer armed and no write in flight.
func settle(t *testing.T, clk *clock.Fake, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	stable := 0
	for stable < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers armed, want %d", clk.PendingTimers(), n)
		}
		if clk.PendingTimers() == n {
			stable++
		} else {
			stable = 0
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleTimeoutDefaultAndReset: with IdleTimeout unset a silent session
// ends after 10 minutes of the injected clock, not one second before; each
// rpc starts the 10 minutes again.
func TestIdleTimeoutDefaultAndReset(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	ts := startServer(t, func(c *Config) {
		c.Clock = clk
		c.IdleTimeout = 0
		c.HelloTimeout = 100 * time.Hour // only the idle timer falls due
		c.WriteTimeout = 100 * time.Hour
	})
	c := dial11(t, ts.addr)
	id := c.hello.SessionID
	// Armed: the connection's no-session timer and the session's idle timer.
	settle(t, clk, 2)
	clk.Advance(DefaultIdleTimeout - time.Second)
	if r := parseReply(t, c.rpc("<get/>")); r.OK == nil {
		t.Fatalf("rpc after %v idle: %+v", DefaultIdleTimeout-time.Second, r)
	}
	settle(t, clk, 2)
	clk.Advance(DefaultIdleTimeout - time.Second) // 20 min since dial, 9:59 since the rpc
	time.Sleep(50 * time.Millisecond)
	ts.handler.mu.Lock()
	_, ended := ts.handler.ends[id]
	ts.handler.mu.Unlock()
	if ended {
		t.Fatal("session ended before 10 minutes without an rpc: the rpc did not restart the idle timer")
	}
	clk.Advance(time.Second)
	if err := c.expectClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if term := ts.handler.waitEnd(t, id); term.Reason != TermTimeout {
		t.Errorf("termination %+v, want timeout", term)
	}
	if st := ts.srv.Statistics(); st.DroppedSessions != 1 {
		t.Errorf("dropped-sessions = %d after an idle timeout, want 1", st.DroppedSessions)
	}
}

// TestIdleTimeoutDisabled: a negative IdleTimeout never ends a session.
func TestIdleTimeoutDisabled(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	ts := startServer(t, func(c *Config) {
		c.Clock = clk
		c.IdleTimeout = -1
		c.HelloTimeout = 100 * time.Hour
		c.WriteTimeout = 100 * time.Hour
	})
	c := dial11(t, ts.addr)
	settle(t, clk, 1) // the no-session timer only
	clk.Advance(24 * time.Hour)
	if r := parseReply(t, c.rpc("<get/>")); r.OK == nil {
		t.Fatalf("rpc after a day idle with the timeout off: %+v", r)
	}
}

// TestCounters: the RFC 6022 counters of a session and of the server.
func TestCounters(t *testing.T) {
	ts := startServer(t, nil)
	c := dial11(t, ts.addr) // one <get/>
	c.rpc(`<fail xmlns="` + testNS + `"/>`)
	c.rpc(`<notify xmlns="` + testNS + `"/>`) // a notification, then the reply
	c.write(`<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`)
	if _, err := c.read(); err != nil { // missing message-id: an rpc-error
		t.Fatal(err)
	}
	if _, err := c.read(); err != nil {
		t.Fatal(err)
	}
	var sess *Session
	for _, s := range ts.srv.Sessions() {
		if s.ID() == c.hello.SessionID {
			sess = s
		}
	}
	if sess == nil {
		t.Fatal("session not listed")
	}
	want := Counters{InRPCs: 3, InBadRPCs: 1, OutRPCErrors: 2, OutNotifications: 1}
	if got := sess.Counters(); got != want {
		t.Errorf("session counters = %+v, want %+v", got, want)
	}
	// A bad hello counts, as does its session.
	b, err := dialRaw(t, ts.addr, passwordConfig("alice", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	b.write(`<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:x</capability></capabilities></hello>`)
	if err := b.expectClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	st := ts.srv.Statistics()
	if st.Counters != want || st.InBadHellos != 1 || st.InSessions != 2 || st.StartTime.IsZero() {
		t.Errorf("statistics = %+v, want counters %+v, 1 bad hello, 2 sessions", st, want)
	}
}
