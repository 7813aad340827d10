package syslog

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/rsyslogtest"
	"github.com/pkiagent/pkiagent/telemetry"
)

var start = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// certs is a state source holding the device certificates.
type certs struct {
	mu sync.Mutex
	m  map[string]*gen.PkiAuthority_Certificates_Certificate
}

func (c *certs) set(name, fp string, notAfter time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*gen.PkiAuthority_Certificates_Certificate{}
	}
	c.m[name] = &gen.PkiAuthority_Certificates_Certificate{Name: new(name), FingerprintSha256: new(fp),
		NotAfter: new(notAfter.UTC().Format(time.RFC3339)), Serial: new("02:EC"),
		Issuer: new("CN=cacert,O=CSCO,C=IN"), Subject: new("CN=" + name + ".example.net")}
}

func (c *certs) State() *gen.Device {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &gen.Device{Certificates: &gen.PkiAuthority_Certificates{Certificate: c.m}}
}

// agentOf is a store with the certificates of c as its state, and its bus.
type agentOf struct {
	*agent.Store
	bus *telemetry.Bus
}

func newStore(clk clock.Clock, c *certs) agentOf {
	bus := telemetry.NewBus()
	st := agent.New(agent.Config{Clock: clk, Logger: slog.New(slog.DiscardHandler), Bus: bus})
	st.AddStateSource(c)
	return agentOf{st, bus}
}

func alarmEvent(action, id, severity string) api.Event {
	return api.Event{Kind: api.EventNotification, Notification: &api.Notification{Module: "pki-authority", Name: "alarm-notification",
		Leaves: []api.Leaf{{Name: "action", Value: action}, {Name: "id", Value: id}, {Name: "resource", Value: "router"},
			{Name: "category", Value: "certificate-expiring"}, {Name: "severity", Value: severity},
			{Name: "text", Value: "certificate router: expires in 6 days"}, {Name: "time-raised", Value: "2026-11-01T12:00:00Z"}}}}
}

func sd(m *rfc5424.SyslogMessage, id string) map[string]string {
	if m.StructuredData == nil {
		return nil
	}
	return (*m.StructuredData)[id]
}

func byMsgID(ms []*rfc5424.SyslogMessage) map[string][]*rfc5424.SyslogMessage {
	out := map[string][]*rfc5424.SyslogMessage{}
	for _, m := range ms {
		out[*m.MsgID] = append(out[*m.MsgID], m)
	}
	return out
}

// TestRsyslogReceivesAndParses sends an alarm raised then re-graded, an
// audit record (through audit.Log's tee) and an expiry alert over UDP,
// TCP (octet counting) and TLS to a real rsyslogd, and parses what it
// wrote back with go-syslog's RFC 5424 parser.
func TestRsyslogReceivesAndParses(t *testing.T) {
	r := rsyslogtest.Start(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.CA)
	for _, tc := range []struct{ desc, addr string }{
		{"udp", "udp://" + r.UDP}, {"tcp", "tcp://" + r.TCP}, {"tls", "tls://" + r.TLS},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			clk := clock.NewFake(start)
			c := &certs{}
			c.set("router", "ab12", start.Add(5*24*time.Hour+time.Hour))
			st := newStore(clk, c)
			s, err := New(Config{Addr: tc.addr, TLS: &tls.Config{RootCAs: pool}, Bus: st.bus, State: st, Clock: clk, Hostname: "r1",
				MarksFile: filepath.Join(t.TempDir(), "marks.json")})
			if err != nil {
				t.Fatal(err)
			}
			al, err := audit.Open(filepath.Join(t.TempDir(), "audit.log"), "r1")
			if err != nil {
				t.Fatal(err)
			}
			defer al.Close()
			al.Tee(s.Audit)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); s.Run(ctx) }()
			defer func() { cancel(); <-done }()
			st.bus.Publish(alarmEvent("raised", "certificate:router", "minor"))
			st.bus.Publish(alarmEvent("raised", "certificate:router", "major"))
			if err := al.Write(audit.Event{Time: start, User: "admin", Type: "system.commit", Description: "commit 7 by admin: 1 leaves updated, 0 deleted",
				Detail: map[string]any{"commit-id": 7}, Permitted: true}); err != nil {
				t.Fatal(err)
			}
			got := byMsgID(r.Received(t, tc.desc, 4))
			if len(got["ALARM"]) != 2 || len(got["AUDIT"]) != 1 || len(got["CERT_EXPIRING"]) != 1 {
				t.Fatalf("received %v", got)
			}
			raised, regraded := got["ALARM"][0], got["ALARM"][1]
			if *raised.Appname != "pki-agent" || *raised.Hostname != "r1" || *raised.Severity != sevWarning || *raised.Facility != facility {
				t.Errorf("alarm header: %+v", raised)
			}
			if diff := cmp.Diff(map[string]string{"action": "re-graded", "id": "certificate:router", "resource": "router", "category": "certificate-expiring",
				"severity": "major", "time-raised": "2026-11-01T12:00:00Z"}, sd(regraded, sdAlarm)); diff != "" {
				t.Errorf("re-graded alarm (-want +got):\n%s", diff)
			}
			if *regraded.Severity != sevErr || !strings.HasPrefix(*regraded.Message, "alarm re-graded: certificate:router") {
				t.Errorf("re-graded alarm: %d %q", *regraded.Severity, *regraded.Message)
			}
			a := got["AUDIT"][0]
			if diff := cmp.Diff(map[string]string{"type": "system.commit", "user": "admin", "permitted": "true", "commit-id": "7"}, sd(a, sdAudit)); diff != "" {
				t.Errorf("audit (-want +got):\n%s", diff)
			}
			x := got["CERT_EXPIRING"][0]
			want := "%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : Certificate expiring WITHIN A WEEK. Trustpoint Name= router, Certificate Type= ID, Serial Number= 02:EC, Issuer Name= CN=cacert,O=CSCO,C=IN, Subject name= CN=router.example.net, Time Left= 5 days, 1 hours, 0 minutes, 0 seconds"
			if *x.Message != want || *x.Severity != sevAlert {
				t.Errorf("expiry alert %d:\n got %s\nwant %s", *x.Severity, *x.Message, want)
			}
			if p := sd(x, sdExpiry); p["trustpoint"] != "router" || p["serial"] != "02:EC" || p["subject"] != "CN=router.example.net" || p["seconds-left"] != "435600" {
				t.Errorf("expiry alert structured data: %v", p)
			}
			if sent, dropped := s.Counts(); sent != 4 || dropped != 0 {
				t.Errorf("sent %d dropped %d", sent, dropped)
			}
		})
	}
}

// drain returns the messages queued so far, parsed.
func drain(t *testing.T, s *Sender) []*rfc5424.SyslogMessage {
	t.Helper()
	var out []*rfc5424.SyslogMessage
	for {
		select {
		case q := <-s.queue:
			b, err := s.format(q)
			if err != nil {
				t.Fatal(err)
			}
			m, err := rfc5424.NewParser().Parse(b)
			if err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			out = append(out, m.(*rfc5424.SyslogMessage))
		default:
			return out
		}
	}
}

// TestExpiryAlertSchedule walks a fake clock hour by hour through the
// last 90 days of a certificate: alerts come 60 days before it expires,
// then weekly, then daily in the last week, each once, also across a
// restart of the sender; a renewed certificate starts again.
func TestExpiryAlertSchedule(t *testing.T) {
	clk := clock.NewFake(start)
	notAfter := start.Add(90 * 24 * time.Hour)
	c := &certs{}
	c.set("router", "fp1", notAfter)
	st := newStore(clk, c)
	marks := filepath.Join(t.TempDir(), "marks.json")
	open := func() *Sender {
		s, err := New(Config{Addr: "udp://127.0.0.1:9", Bus: st.bus, State: st, Clock: clk, MarksFile: marks})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	var days []int
	var at []time.Duration
	for clk.Now().Before(notAfter.Add(2 * 24 * time.Hour)) {
		s.checkExpiry()
		for _, m := range drain(t, s) {
			left := notAfter.Sub(clk.Now())
			days = append(days, int((left+time.Hour-1)/(24*time.Hour)))
			at = append(at, left)
			if want := uint8(sevWarning); left <= 7*24*time.Hour {
				want = sevAlert
				if *m.Severity != want {
					t.Fatalf("alert with %s left: severity %d", left, *m.Severity)
				}
			} else if *m.Severity != want {
				t.Fatalf("warning with %s left: severity %d", left, *m.Severity)
			}
		}
		if len(days) == 5 && days[4] == 32 {
			s = open() // a restart between two alerts
			s.checkExpiry()
			if again := drain(t, s); len(again) != 0 {
				t.Fatalf("a restart sent again: %v", *again[0].Message)
			}
		}
		clk.Advance(time.Hour)
	}
	if diff := cmp.Diff(alertDays, days); diff != "" {
		t.Fatalf("alert days (-want +got):\n%s", diff)
	}
	for i, left := range at {
		if d := time.Duration(alertDays[i]) * 24 * time.Hour; left > d || left <= d-time.Hour {
			t.Errorf("alert %d sent with %s left, want within the hour after %s", i, left, d)
		}
	}
	// Renewed: a new fingerprint, 59 days left: its first alert at once.
	c.set("router", "fp2", clk.Now().Add(59*24*time.Hour))
	s.checkExpiry()
	if got := drain(t, s); len(got) != 1 || !strings.Contains(*got[0].Message, "WITHIN 60 DAYS") {
		t.Fatalf("renewed certificate: %v", got)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestReceiverDownOrSlowNeverBlocks: with nobody listening, and with a
// receiver that accepts but never reads, sending 20,000 messages returns
// at once; what the bounded queue cannot hold is dropped, counted in
// /system/syslog/state and logged once a minute.
func TestReceiverDownOrSlowNeverBlocks(t *testing.T) {
	slow, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := slow.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c // never read
		}
	}()
	down := fmt.Sprintf("tcp://127.0.0.1:%d", rsyslogtest.FreePort(t, "tcp"))
	for _, tc := range []struct{ desc, addr string }{{"down", down}, {"slow", "tcp://" + slow.Addr().String()}} {
		t.Run(tc.desc, func(t *testing.T) {
			clk := clock.NewFake(start)
			var logs syncBuffer
			st := newStore(clk, &certs{})
			s, err := New(Config{Addr: tc.addr, Bus: st.bus, State: st, Clock: clk, QueueSize: 64, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); s.Run(ctx) }()
			defer func() { cancel(); <-done }()
			const n = 20000
			big := strings.Repeat("x", 1500)
			t0 := time.Now()
			for i := range n {
				s.Audit(audit.Event{User: "admin", Type: "system.commit", Description: fmt.Sprintf("commit %d %s", i, big), Permitted: true})
			}
			took := time.Since(t0)
			if took > 2*time.Second {
				t.Fatalf("sending %d messages took %s", n, took)
			}
			sent, dropped := s.Counts()
			if dropped == 0 || sent+dropped > n {
				t.Fatalf("sent %d, dropped %d of %d", sent, dropped, n)
			}
			if got := s.State().GetSystem().GetSyslog().GetState().GetDropped(); got < dropped {
				t.Fatalf("state dropped %d, counted %d", got, dropped)
			}
			if lines := strings.Count(logs.String(), "messages dropped"); lines != 1 {
				t.Fatalf("%d drop reports in the same minute:\n%s", lines, logs.String())
			}
			clk.Advance(2 * time.Minute)
			s.Audit(audit.Event{Type: "x"})
			for i := 0; i < 100 && strings.Count(logs.String(), "messages dropped") < 2; i++ {
				s.Audit(audit.Event{Type: "x"})
			}
			if lines := strings.Count(logs.String(), "messages dropped"); lines != 2 {
				t.Fatalf("%d drop reports after a minute:\n%s", lines, logs.String())
			}
			t.Logf("%s: %d messages enqueued in %s: %d sent, %d dropped", tc.desc, n, took, sent, dropped)
		})
	}
	slow.Close()
	for c := range held {
		c.Close()
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"udp://127.0.0.1:514", true}, {"tcp://[::1]:601", true}, {"tls://logs.example.net:6514", true},
		{"127.0.0.1:514", false}, {"http://h:1", false}, {"udp://h", false}, {"udp://h:0", false}, {"udp://h:70000", false},
		{"tcp://h:1/x", false}, {"tcp://u@h:1", false}, {"", false},
	} {
		_, _, err := ParseAddr(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.addr, err)
		}
	}
}

// FuzzParseAddr: any --syslog value gets a verdict without a panic, and an
// accepted one names a transport and a port.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"udp://127.0.0.1:514", "tls://[::1]:6514", "tcp://h:1/x", "udp://:0", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		network, host, err := ParseAddr(addr)
		if err != nil {
			return
		}
		if _, port, err := net.SplitHostPort(host); err != nil || port == "" || (network != "udp" && network != "tcp" && network != "tls") {
			t.Fatalf("accepted %q as %s %s", addr, network, host)
		}
	})
}
