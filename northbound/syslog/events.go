package syslog

import (
	"context"
	"fmt"
	"strconv"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/audit"
)

// The SD-IDs of the structured data, under the enterprise number that RFC
// 5612 reserves for documentation (32473): the agent has no IANA number.
const (
	sdAlarm  = "alarm@32473"
	sdAudit  = "audit@32473"
	sdExpiry = "certExpiry@32473"
)

// eventLoop follows the bus: alarms become messages, a change of the
// certificates (and an hourly tick) checks the expiry alerts.
func (s *Sender) eventLoop(ctx context.Context) {
	sub := s.sub
	defer func() { sub.Close() }()
	active := map[string]string{} // alarm id -> severity, to tell a re-grade
	s.checkExpiry()
	tick := s.cfg.Clock.NewTimer(expiryEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			s.checkExpiry()
			tick.Reset(expiryEvery)
		case ev, ok := <-sub.C:
			if !ok {
				if sub.Err() == nil {
					return
				}
				s.cfg.Logger.Error("syslog: fell behind the agent's events; some alarms were not sent", "err", sub.Err())
				sub = s.cfg.Bus.Subscribe(4096)
				continue
			}
			switch {
			case ev.Kind == api.EventNotification && ev.Notification != nil && ev.Notification.Name == "alarm-notification":
				s.alarm(ev.Notification, active)
			case ev.Kind == api.EventState && touchesCertificates(ev):
				s.checkExpiry()
			}
		}
	}
}

func touchesCertificates(ev api.Event) bool {
	for _, c := range ev.Changes {
		if el := c.Path.GetElem(); len(el) > 0 && el[0].GetName() == "certificates" {
			return true
		}
	}
	return false
}

// alarm sends an alarm raised, cleared or re-graded (raised again with
// another severity).
func (s *Sender) alarm(n *api.Notification, active map[string]string) {
	f := map[string]string{}
	for _, l := range n.Leaves {
		if v, ok := l.Value.(string); ok {
			f[l.Name] = v
		}
	}
	id, sev, action := f["id"], f["severity"], f["action"]
	if action == "raised" {
		if prev, ok := active[id]; ok && prev != sev {
			action = "re-graded"
		}
		active[id] = sev
	} else {
		delete(active, id)
	}
	severity := uint8(sevNotice)
	if action != "cleared" {
		switch sev {
		case "critical":
			severity = sevCrit
		case "major":
			severity = sevErr
		default:
			severity = sevWarning
		}
	}
	s.enqueue(message{
		severity: severity, msgID: "ALARM",
		text: fmt.Sprintf("alarm %s: %s (%s, %s): %s", action, id, f["category"], sev, f["text"]),
		sdID: sdAlarm,
		params: [][2]string{{"action", action}, {"id", id}, {"resource", f["resource"]}, {"category", f["category"]},
			{"severity", sev}, {"time-raised", f["time-raised"]}},
	})
}

// Audit sends an audit record (audit.Log.Tee). It never blocks.
func (s *Sender) Audit(ev audit.Event) {
	sev := uint8(sevInfo)
	if !ev.Permitted {
		sev = sevWarning
	}
	params := [][2]string{{"type", ev.Type}, {"user", ev.User}, {"permitted", strconv.FormatBool(ev.Permitted)}}
	if id, ok := ev.Detail["commit-id"]; ok {
		params = append(params, [2]string{"commit-id", fmt.Sprint(id)})
	}
	s.enqueue(message{severity: sev, msgID: "AUDIT", text: ev.Description, sdID: sdAudit, params: params})
}
