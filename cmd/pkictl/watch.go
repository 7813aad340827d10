package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var watchCommands = []command{
	{words: "watch alarms", args: "[--severity minor|major|critical] [--count N] [--timeout DURATION]", summary: "follow alarms live (gNMI Subscribe ON_CHANGE): the active ones, then each raised or cleared", run: watchAlarms},
}

// alarmEvent is one line of watch alarms.
type alarmEvent struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"` // active (at start), raised, regraded, updated (text) or cleared
	alarm
}

func watchAlarms(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("watch alarms", flag.ContinueOnError)
	count := fs.Int("count", 0, "stop after this many alarm lines (0: until Ctrl-C)")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: until Ctrl-C); exit 1 if --count was not reached")
	severity := fs.String("severity", "minor", "show alarms of this severity and worse: minor, major or critical")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *count < 0 || *timeout < 0 {
		return usagef("watch alarms: --count and --timeout are not negative")
	}
	worst, ok := severityRank[*severity]
	if !ok {
		return usagef("--severity %q: minor, major or critical", clip(*severity))
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	g, err := e.c.gnmiClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	stream, err := g.Subscribe(ctx)
	if err != nil {
		return e.c.gnmiError(err)
	}
	p, _ := parsePath("/alarms")
	err = stream.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode:         gpb.SubscriptionList_STREAM,
		Encoding:     gpb.Encoding_JSON_IETF,
		Subscription: []*gpb.Subscription{{Path: p, Mode: gpb.SubscriptionMode_ON_CHANGE}},
	}}})
	if err != nil {
		return e.c.gnmiError(err)
	}
	known := map[string]alarm{}
	synced := false
	printed := 0
	if e.output == "table" {
		fmt.Fprintf(e.stdout, "%-24s  %-7s  %-8s  %-20s  %s\n", "TIME", "EVENT", "SEVERITY", "CATEGORY", "TEXT")
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				if *count > 0 && printed < *count {
					return userErrorf("watch alarms: %d of %d alarm lines within %s", printed, *count, *timeout)
				}
				return nil
			}
			if ctx.Err() != nil || status.Code(err) == codes.Canceled {
				return nil // Ctrl-C
			}
			return e.c.gnmiError(err)
		}
		if resp.GetSyncResponse() {
			synced = true
			if e.output == "table" && len(known) == 0 {
				fmt.Fprintln(e.stderr, "no active alarms; watching (Ctrl-C ends)")
			}
			continue
		}
		for _, ev := range alarmEvents(resp.GetUpdate(), known, synced) {
			if r, ok := severityRank[ev.Severity]; ok && r > worst {
				continue
			}
			e.printAlarmEvent(ev)
			printed++
			if *count > 0 && printed >= *count {
				return nil
			}
		}
	}
}

// alarmEvents folds one notification into known and says what changed.
func alarmEvents(n *gpb.Notification, known map[string]alarm, synced bool) []alarmEvent {
	now := time.Now().UTC()
	changed := map[string]alarm{}
	var order []string
	touch := func(id string) alarm {
		a, ok := changed[id]
		if !ok {
			a = known[id]
			a.ID = id
			order = append(order, id)
		}
		return a
	}
	var cleared []string
	for _, d := range n.GetDelete() {
		if id := alarmID(n.GetPrefix(), d); id != "" {
			if _, ok := known[id]; ok && !slices.Contains(cleared, id) {
				cleared = append(cleared, id)
			}
		}
	}
	for _, u := range n.GetUpdate() {
		full := joinPath(n.GetPrefix(), u.GetPath())
		id := alarmID(nil, full)
		if id == "" {
			// The whole container or list in one JSON value.
			var v struct {
				Alarm []alarm `json:"alarm"`
			}
			if b := u.GetVal().GetJsonIetfVal(); b != nil && json.Unmarshal(b, &v) == nil {
				for _, a := range v.Alarm {
					x := touch(a.ID)
					merge(&x, a)
					changed[a.ID] = x
				}
			}
			continue
		}
		a := touch(id)
		leaf := full.GetElem()[len(full.GetElem())-1].GetName()
		if b := u.GetVal().GetJsonIetfVal(); b != nil && leaf == "alarm" {
			var one alarm
			if json.Unmarshal(b, &one) == nil {
				merge(&a, one)
			}
		} else {
			setAlarmLeaf(&a, leaf, scalar(u.GetVal()))
		}
		changed[id] = a
	}
	var out []alarmEvent
	for _, id := range cleared {
		out = append(out, alarmEvent{Time: now, Event: "cleared", alarm: known[id]})
		delete(known, id)
	}
	for _, id := range order {
		a := changed[id]
		ev := "raised"
		if old, ok := known[id]; ok {
			ev = "updated" // its text
			if old.Severity != a.Severity || old.Category != a.Category {
				ev = "regraded"
			}
		}
		if !synced {
			ev = "active"
		}
		known[id] = a
		out = append(out, alarmEvent{Time: now, Event: ev, alarm: a})
	}
	return out
}

func merge(a *alarm, b alarm) {
	for _, f := range []struct {
		dst *string
		src string
	}{{&a.Resource, b.Resource}, {&a.Category, b.Category}, {&a.Severity, b.Severity}, {&a.Text, b.Text}, {&a.TimeRaised, b.TimeRaised}} {
		if f.src != "" {
			*f.dst = stripModule(f.src)
		}
	}
}

func setAlarmLeaf(a *alarm, leaf, v string) {
	switch leaf {
	case "resource":
		a.Resource = v
	case "category":
		a.Category = stripModule(v)
	case "severity":
		a.Severity = stripModule(v)
	case "text":
		a.Text = v
	case "time-raised":
		a.TimeRaised = v
	}
}

func scalar(v *gpb.TypedValue) string {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		return x.StringVal
	case *gpb.TypedValue_JsonIetfVal:
		var s any
		if json.Unmarshal(x.JsonIetfVal, &s) == nil {
			return fmt.Sprint(s)
		}
	}
	return fmt.Sprint(v.GetValue())
}

func joinPath(prefix, p *gpb.Path) *gpb.Path {
	return &gpb.Path{Elem: append(slices.Clone(prefix.GetElem()), p.GetElem()...)}
}

// alarmID is the id key of /alarms/alarm[id=...] in prefix+p, "" if none.
func alarmID(prefix, p *gpb.Path) string {
	for _, e := range joinPath(prefix, p).GetElem() {
		if stripModule(e.GetName()) == "alarm" {
			return e.GetKey()["id"]
		}
	}
	return ""
}

func (e *env) printAlarmEvent(ev alarmEvent) {
	if e.output != "table" {
		b, _ := json.Marshal(ev) // one JSON object a line, for scripts
		fmt.Fprintf(e.stdout, "%s\n", b)
		return
	}
	line := fmt.Sprintf("%-24s  %-7s  %-8s  %-20s  %s", ev.Time.Format("2006-01-02T15:04:05.000Z"), ev.Event, orDash(ev.Severity), orDash(ev.Category), ev.Text)
	if e.width > 0 {
		line = strings.Join(wrap(line, e.width), "\n    ")
	}
	fmt.Fprintln(e.stdout, line)
}
