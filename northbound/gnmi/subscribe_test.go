package gnmi

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"

	"github.com/pkiagent/pkiagent/gen"
)

// collector reads a Subscribe stream in the background.
type collector struct {
	t    *testing.T
	msgs chan *gnmi.SubscribeResponse
	errc chan error
	cl   gnmi.GNMI_SubscribeClient
}

func subscribe(t *testing.T, c gnmi.GNMIClient, list *gnmi.SubscriptionList) *collector {
	t.Helper()
	cl, err := c.Subscribe(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Send(&gnmi.SubscribeRequest{Request: &gnmi.SubscribeRequest_Subscribe{Subscribe: list}}); err != nil {
		t.Fatal(err)
	}
	col := &collector{t: t, msgs: make(chan *gnmi.SubscribeResponse, 10000), errc: make(chan error, 1), cl: cl}
	go func() {
		for {
			r, err := cl.Recv()
			if err != nil {
				col.errc <- err
				close(col.msgs)
				return
			}
			col.msgs <- r
		}
	}()
	return col
}

// leafUpdate is an update or delete as the tests compare them.
type leafUpdate struct {
	path string
	val  string // "" for a delete
}

func valText(v *gnmi.TypedValue) string {
	switch x := v.GetValue().(type) {
	case *gnmi.TypedValue_JsonIetfVal:
		return string(x.JsonIetfVal)
	case *gnmi.TypedValue_JsonVal:
		return string(x.JsonVal)
	case *gnmi.TypedValue_StringVal:
		return x.StringVal
	case *gnmi.TypedValue_UintVal:
		return fmt.Sprint(x.UintVal)
	case *gnmi.TypedValue_BoolVal:
		return fmt.Sprint(x.BoolVal)
	}
	return v.String()
}

// until reads until sync (when sync is true) or until pred holds for the
// updates read so far, failing after a timeout.
func (c *collector) until(desc string, pred func([]leafUpdate, bool) bool) []leafUpdate {
	c.t.Helper()
	var got []leafUpdate
	synced := false
	timeout := time.After(10 * time.Second)
	for !pred(got, synced) {
		select {
		case r, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("%s: stream ended: %v (got %v)", desc, <-c.errc, got)
			}
			if r.GetSyncResponse() {
				synced = true
				got = append(got, leafUpdate{path: "SYNC"})
				continue
			}
			n := r.GetUpdate()
			for _, d := range n.GetDelete() {
				got = append(got, leafUpdate{path: api.PathString(d)})
			}
			for _, u := range n.GetUpdate() {
				got = append(got, leafUpdate{path: api.PathString(u.Path), val: valText(u.Val)})
			}
		case <-timeout:
			c.t.Fatalf("%s: timed out; got %v", desc, got)
		}
	}
	return got
}

func hasUpdate(path, val string) func([]leafUpdate, bool) bool {
	return func(got []leafUpdate, _ bool) bool {
		for _, g := range got {
			if g.path == path && g.val == val {
				return true
			}
		}
		return false
	}
}

func synced(_ []leafUpdate, s bool) bool { return s }

func alarmState(id, severity string) *gen.Device {
	d := &gen.Device{}
	a := d.GetOrCreateAlarms().GetOrCreateAlarm(id)
	a.Text = ygotString("certificate " + id + " expires soon")
	sev, _ := gen.PkiAuthority_Severity_minor, 0
	if severity == "major" {
		sev = gen.PkiAuthority_Severity_major
	}
	a.Severity = sev
	return d
}

func ygotString(s string) *string { return &s }

func TestSubscribeOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	if _, err := c.Set(ctxT(t), &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/trusted-ca-certificate[name=root]"), Val: jsonVal(caJSON)}}}); err != nil {
		t.Fatal(err)
	}
	col := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_ONCE, Encoding: gnmi.Encoding_JSON_IETF,
		Subscription: []*gnmi.Subscription{{Path: p(t, "/authority/trusted-ca-certificate[name=root]/validation-mode")}}})
	got := col.until("once", synced)
	want := []leafUpdate{{"/authority/trusted-ca-certificate[name=root]/validation-mode", `"warn"`}, {path: "SYNC"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v; want %v", got, want)
	}
	select {
	case err := <-col.errc:
		if !strings.Contains(err.Error(), "EOF") {
			t.Errorf("ONCE ended with %v; want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("ONCE stream not closed after sync")
	}
}

func TestSubscribePoll(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	col := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_POLL, Encoding: gnmi.Encoding_PROTO,
		Subscription: []*gnmi.Subscription{{Path: p(t, "/alarms")}}})
	got := col.until("first sync", synced)
	if len(got) != 1 {
		t.Errorf("initial poll of no alarms: %v", got)
	}
	e.state.set(alarmState("a1", "minor"))
	if err := col.cl.Send(&gnmi.SubscribeRequest{Request: &gnmi.SubscribeRequest_Poll{Poll: &gnmi.Poll{}}}); err != nil {
		t.Fatal(err)
	}
	col.until("poll", func(g []leafUpdate, s bool) bool {
		return s && hasUpdate("/alarms/alarm[id=a1]/severity", "minor")(g, s)
	})
}

func TestSubscribeStreamOnChange(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.admin()
	// Paths that do not exist yet stay subscribed.
	col := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_STREAM, Encoding: gnmi.Encoding_JSON_IETF,
		Subscription: []*gnmi.Subscription{
			{Path: p(t, "/alarms/alarm"), Mode: gnmi.SubscriptionMode_ON_CHANGE},
			{Path: p(t, "/authority/trusted-ca-certificate[name=*]/validation-mode"), Mode: gnmi.SubscriptionMode_TARGET_DEFINED},
		}})
	col.until("sync", synced)

	// A config change by commit.
	if _, err := c.Set(ctxT(t), &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/trusted-ca-certificate[name=root]"), Val: jsonVal(caJSON)}}}); err != nil {
		t.Fatal(err)
	}
	col.until("config change", hasUpdate("/authority/trusted-ca-certificate[name=root]/validation-mode", `"warn"`))

	// The engine raises an alarm: state changes on the bus.
	raised := alarmState("cert-expiring:router", "major")
	e.state.set(raised)
	ch, err := api.Diff(&gen.Device{}, raised)
	if err != nil {
		t.Fatal(err)
	}
	e.bus.Publish(api.Event{Kind: api.EventState, Time: time.Now(), Changes: ch})
	col.until("alarm raised", hasUpdate("/alarms/alarm[id=cert-expiring:router]/severity", `"major"`))

	// Cleared: deletes.
	e.state.set(&gen.Device{})
	ch, _ = api.Diff(raised, &gen.Device{})
	e.bus.Publish(api.Event{Kind: api.EventState, Time: time.Now(), Changes: ch})
	col.until("alarm cleared", func(g []leafUpdate, _ bool) bool {
		for _, u := range g {
			if strings.HasPrefix(u.path, "/alarms/alarm[id=cert-expiring:router]") && u.val == "" {
				return true
			}
		}
		return false
	})

	// A delete of the CA reaches the leaf subscription.
	if _, err := c.Set(ctxT(t), &gnmi.SetRequest{Delete: []*gnmi.Path{p(t, "/authority/trusted-ca-certificate[name=root]")}}); err != nil {
		t.Fatal(err)
	}
	col.until("config delete", func(g []leafUpdate, _ bool) bool {
		for _, u := range g {
			if strings.HasPrefix(u.path, "/authority/trusted-ca-certificate[name=root]") && u.val == "" {
				return true
			}
		}
		return false
	})
}

func TestSubscribeSampleHeartbeat(t *testing.T) {
	e := newEnv(t, envOpts{limits: Limits{MinSampleInterval: 50 * time.Millisecond}})
	c := e.admin()
	e.state.set(alarmState("a1", "minor"))
	col := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_STREAM, Encoding: gnmi.Encoding_PROTO,
		Subscription: []*gnmi.Subscription{{
			Path: p(t, "/alarms/alarm[id=a1]/severity"), Mode: gnmi.SubscriptionMode_SAMPLE,
			SampleInterval: uint64(50 * time.Millisecond), SuppressRedundant: true, HeartbeatInterval: uint64(300 * time.Millisecond),
		}}})
	start := time.Now()
	col.until("sync", synced)
	// Suppressed until the value changes or the heartbeat is due.
	count := func(g []leafUpdate) int {
		n := 0
		for _, u := range g {
			if u.path == "/alarms/alarm[id=a1]/severity" {
				n++
			}
		}
		return n
	}
	got := col.until("heartbeat", func(g []leafUpdate, _ bool) bool { return count(g) >= 1 })
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("suppressed value re-sent after %v (%v); want the heartbeat at ~300ms", el, got)
	}
	e.state.set(alarmState("a1", "major"))
	col.until("changed value sampled", hasUpdate("/alarms/alarm[id=a1]/severity", "major"))
	e.state.set(&gen.Device{})
	col.until("gone leaf sampled as delete", func(g []leafUpdate, _ bool) bool {
		for _, u := range g {
			if u.path == "/alarms/alarm[id=a1]/severity" && u.val == "" {
				return true
			}
		}
		return false
	})

	// Below the minimum interval: refused.
	bad := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_STREAM,
		Subscription: []*gnmi.Subscription{{Path: p(t, "/alarms"), Mode: gnmi.SubscriptionMode_SAMPLE, SampleInterval: uint64(time.Millisecond)}}})
	if err := <-bad.errc; code(err) != "InvalidArgument" || !strings.Contains(err.Error(), "below the minimum") {
		t.Errorf("1ms sample: %v", err)
	}
}

func TestSubscribeUpdatesOnlyAndLimits(t *testing.T) {
	e := newEnv(t, envOpts{limits: Limits{MaxStreamsPerUser: 2, MaxPending: 10}})
	c := e.admin()
	e.state.set(alarmState("a1", "minor"))
	col := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_STREAM, UpdatesOnly: true,
		Subscription: []*gnmi.Subscription{{Path: p(t, "/alarms")}}})
	got := col.until("sync", synced)
	if len(got) != 1 {
		t.Errorf("updates_only sent the initial state: %v", got)
	}
	// Second stream is fine, third is over the per-user limit.
	subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_STREAM, Subscription: []*gnmi.Subscription{{Path: p(t, "/stats")}}}).until("sync 2", synced)
	third := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_STREAM, Subscription: []*gnmi.Subscription{{Path: p(t, "/stats")}}})
	if err := <-third.errc; code(err) != "ResourceExhausted" || !strings.Contains(err.Error(), "user admin") {
		t.Errorf("third stream: %v", err)
	}
	// More distinct paths at once than the stream may queue: disconnected.
	var ch []api.Change
	for i := range 50 {
		ch = append(ch, api.Change{Path: p(t, fmt.Sprintf("/alarms/alarm[id=x%d]/text", i)), Value: strVal("t")})
	}
	e.bus.Publish(api.Event{Kind: api.EventState, Time: time.Now(), Changes: ch})
	for range col.msgs {
	}
	if err := <-col.errc; code(err) != "ResourceExhausted" || !strings.Contains(err.Error(), "too slow") {
		t.Errorf("overflowing stream: %v", err)
	}
}

func TestSubscribeStalledClient(t *testing.T) {
	e := newEnv(t, envOpts{limits: Limits{StallTimeout: 300 * time.Millisecond}})
	// Small fixed windows (no BDP growth), so the server's Send blocks.
	c := e.client("admin", adminPW, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	cl, err := c.Subscribe(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	cl.Send(&gnmi.SubscribeRequest{Request: &gnmi.SubscribeRequest_Subscribe{Subscribe: &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_STREAM,
		Subscription: []*gnmi.Subscription{{Path: p(t, "/alarms")}}}}})
	for {
		r, err := cl.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetSyncResponse() {
			break
		}
	}
	// The client reads no more while large updates pile up beyond the
	// transport's flow-control windows.
	big := strings.Repeat("x", 256<<10)
	for i := range 40 {
		e.bus.Publish(api.Event{Kind: api.EventState, Time: time.Now(), Changes: []api.Change{{Path: p(t, fmt.Sprintf("/alarms/alarm[id=x%d]/text", i)), Value: strVal(big)}}})
	}
	time.Sleep(time.Second)
	for {
		_, err := cl.Recv()
		if err != nil {
			if code(err) != "ResourceExhausted" || !strings.Contains(err.Error(), "has not read") {
				t.Errorf("stalled stream ended with %v", err)
			}
			return
		}
	}
}
