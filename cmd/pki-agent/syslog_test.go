package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/internal/rsyslogtest"
)

// syslogState reads /system/syslog/state over gNMI.
func syslogState(ctx context.Context, t *testing.T, g gpb.GNMIClient) string {
	t.Helper()
	r, err := g.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{{Elem: []*gpb.PathElem{{Name: "system"}, {Name: "syslog"}, {Name: "state"}}}},
		Type: gpb.GetRequest_STATE, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		t.Fatalf("Get /system/syslog/state: %v", err)
	}
	return string(r.GetNotification()[0].GetUpdate()[0].GetVal().GetJsonIetfVal())
}

func findMsg(ms []*rfc5424.SyslogMessage, msgID, text string) *rfc5424.SyslogMessage {
	for _, m := range ms {
		if m.MsgID != nil && *m.MsgID == msgID && m.Message != nil && strings.Contains(*m.Message, text) {
			return m
		}
	}
	return nil
}

// TestSyslogFromTheBinary: the agent started with --syslog tcp://... sends
// to a real rsyslogd the audit records of a commit and of a refused login,
// and the alarm the commit raises; its counters are in
// /system/syslog/state.
func TestSyslogFromTheBinary(t *testing.T) {
	r := rsyslogtest.Start(t)
	state := filepath.Join(t.TempDir(), "state")
	a := &usersAgent{t: t, state: state}
	a.p = runAgentBinary(t, state, "--syslog", "tcp://"+r.TCP)
	a.gnmiAddr = logAttr(a.p.logged(t, "gNMI listening"), "addr")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := a.gnmiAs("admin", adminPassword)
	if _, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{
		Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}, {Name: "client-certificate", Key: map[string]string{"name": "web"}}}},
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`{"name":"web"}`)}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := a.gnmiLogin(ctx, "admin", "wrong-password"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong password: %v", err)
	}
	ms := r.Await(t, "tcp", "the commit, its alarm and the refused login", func(ms []*rfc5424.SyslogMessage) bool {
		return findMsg(ms, "AUDIT", "leaves updated") != nil && findMsg(ms, "ALARM", "certificate-missing:web") != nil && findMsg(ms, "AUDIT", "refused") != nil
	})
	alarm := findMsg(ms, "ALARM", "certificate-missing:web")
	if *alarm.Appname != "pki-agent" || *alarm.Severity != 3 || (*alarm.StructuredData)["alarm@32473"]["action"] != "raised" {
		t.Errorf("alarm: %s %d %v", *alarm.Message, *alarm.Severity, *alarm.StructuredData)
	}
	if login := findMsg(ms, "AUDIT", "refused"); (*login.StructuredData)["audit@32473"]["permitted"] != "false" || strings.Contains(*login.Message, "wrong-password") {
		t.Errorf("refused login: %s %v", *login.Message, *login.StructuredData)
	}
	if st := syslogState(ctx, t, g); !strings.Contains(st, `connected": true`) || strings.Contains(st, `sent": "0"`) {
		t.Errorf("/system/syslog/state: %s", st)
	}
}

// TestSyslogReceiverDownKeepsCommitsFast: with nothing listening at
// --syslog, commits take as long as without, and /system/syslog/state
// says the sender is not connected.
func TestSyslogReceiverDownKeepsCommitsFast(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	a := &usersAgent{t: t, state: state}
	a.p = runAgentBinary(t, state, "--syslog", fmt.Sprintf("tcp://127.0.0.1:%d", rsyslogtest.FreePort(t, "tcp")))
	a.gnmiAddr = logAttr(a.p.logged(t, "gNMI listening"), "addr")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := a.gnmiAs("admin", adminPassword)
	var slowest time.Duration
	for i := range 30 {
		t0 := time.Now()
		if err := setCN(ctx, g, "r1", fmt.Sprintf("r1-%d.example.net", i)); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	if slowest > 2*time.Second {
		t.Fatalf("a commit took %s with the syslog receiver down", slowest)
	}
	if st := syslogState(ctx, t, g); !strings.Contains(st, `connected": false`) || !strings.Contains(st, `sent": "0"`) {
		t.Errorf("/system/syslog/state: %s", st)
	}
	t.Logf("30 commits with the receiver down: slowest %s", slowest)
}
