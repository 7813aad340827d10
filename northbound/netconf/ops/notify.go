package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	"github.com/pkiagent/pkiagent/telemetry"
	pkyang "github.com/pkiagent/pkiagent/yang"
)

// subscription is an RFC 5277 subscription of one session.
type subscription struct {
	cancel  context.CancelFunc
	started bool // guarded by Handler.mu; done closes only if started
	done    chan struct{}
}

func (h *Handler) createSubscription(s *netconf.Session, op *node) ncxml.Reply {
	// RFC 5277 puts <filter> in the notification namespace; ncclient,
	// libnetconf2 and others send it in the base namespace, as in <get>.
	ps, err := params(op, p("stream"), p("filter"), base("filter"), p("startTime"), p("stopTime"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if n := ps["stream"]; n != nil && strings.TrimSpace(n.text) != "NETCONF" {
		return ncxml.Error(ncxml.InvalidValue(ncxml.Protocol, fmt.Sprintf("stream %q does not exist; the only stream is NETCONF", strings.TrimSpace(n.text))))
	}
	f, err := parseFilter(ps["filter"])
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	parseTime := func(name string) (*time.Time, error) {
		n := ps[name]
		if n == nil {
			return nil, nil
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(n.text))
		if err != nil {
			return nil, ncxml.BadElement(ncxml.Protocol, name, fmt.Sprintf("%s %q is not a date-and-time such as 2026-11-23T10:00:00Z", name, n.text))
		}
		return &t, nil
	}
	start, err := parseTime("startTime")
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	stop, err := parseTime("stopTime")
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	now := h.clock.Now()
	switch {
	case stop != nil && start == nil:
		return ncxml.Error(ncxml.MissingElement(ncxml.Protocol, "startTime", "stopTime needs startTime (RFC 5277 2.1.1)"))
	case start != nil && start.After(now):
		return ncxml.Error(ncxml.BadElement(ncxml.Protocol, "startTime", "startTime is in the future"))
	case stop != nil && stop.Before(*start):
		return ncxml.Error(ncxml.BadElement(ncxml.Protocol, "stopTime", "stopTime is before startTime"))
	}
	h.mu.Lock()
	st := h.sessions[s.ID()]
	if st == nil || st.sub != nil {
		h.mu.Unlock()
		return ncxml.Error(ncxml.InUse(ncxml.Protocol, "this session already has a notification subscription"))
	}
	ctx, cancel := context.WithCancel(s.Context())
	sub := &subscription{cancel: cancel, done: make(chan struct{})}
	st.sub = sub
	h.mu.Unlock()
	live := h.replay.Next()
	// Subscribed sessions are silent by design: no idle timeout.
	s.SetIdleTimeout(-1)
	s.AfterReply(func() {
		h.mu.Lock()
		sub.started = true
		h.mu.Unlock()
		go func() {
			defer close(sub.done)
			h.deliver(ctx, s, f, start, stop, live)
			h.mu.Lock()
			if st.sub == sub {
				st.sub = nil
			}
			h.mu.Unlock()
		}()
	})
	return ncxml.OK()
}

// deliver sends the replayed notifications (start..live), replayComplete,
// then the live ones until stop or ctx ends.
func (h *Handler) deliver(ctx context.Context, s *netconf.Session, f *filter, start, stop *time.Time, live uint64) {
	send := func(t time.Time, body *node) bool {
		if f != nil && body.name.Space != manageNS {
			sel := f.apply([]*node{body})
			if len(sel) == 0 {
				return true
			}
			body = sel[0]
		}
		err := s.Send(ctx, ncxml.Notification{EventTime: t, Body: body.appendXML(nil, ncxml.NotificationNS)})
		return err == nil
	}
	var next uint64
	if start != nil {
		recs, _, _ := h.replay.From(0)
		for _, r := range recs {
			if r.Seq >= live || r.Time.Before(*start) || (stop != nil && r.Time.After(*stop)) {
				continue
			}
			if !send(r.Time, r.V) {
				return
			}
		}
		if !send(h.clock.Now(), &node{name: xmlName(manageNS, "replayComplete")}) {
			return
		}
	}
	next = live
	var stopC <-chan time.Time
	if stop != nil {
		d := stop.Sub(h.clock.Now())
		if d < 0 {
			d = 0
		}
		t := h.clock.NewTimer(d)
		defer t.Stop()
		stopC = t.C()
	}
	for {
		recs, after, wake := h.replay.From(next)
		if len(recs) > 0 && recs[0].Seq > next {
			h.log.Warn("netconf: subscriber fell behind the replay buffer; notifications lost", "session", s.ID(), "lost", recs[0].Seq-next)
		}
		for _, r := range recs {
			if stop != nil && r.Time.After(*stop) {
				send(h.clock.Now(), &node{name: xmlName(manageNS, "notificationComplete")})
				return
			}
			if !send(r.Time, r.V) {
				return
			}
		}
		next = after
		select {
		case <-wake:
		case <-stopC:
			send(h.clock.Now(), &node{name: xmlName(manageNS, "notificationComplete")})
			return
		case <-ctx.Done():
			return
		}
	}
}

// Run feeds the commits and the notifications of the store's bus into the
// replay buffer until ctx is done.
func (h *Handler) Run(ctx context.Context) error {
	sub := h.sub
	defer func() { sub.Close() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				if errors.Is(sub.Err(), telemetry.ErrSlowSubscriber) {
					h.log.Error("netconf: fell behind the event bus; some notifications are lost; resubscribing")
					sub = h.bus.Subscribe(4096)
					continue
				}
				return nil // the store is closed
			}
			h.event(ev)
		}
	}
}

func (h *Handler) event(ev api.Event) {
	switch ev.Kind {
	case api.EventConfig:
		h.replay.Add(ev.Time, h.configChange(ev))
	case api.EventConfirm:
		h.replay.Add(ev.Time, h.confirmedCommit(ev))
	case api.EventNotification:
		if n := notificationNode(ev.Notification); n != nil {
			h.replay.Add(ev.Time, n)
		} else {
			h.log.Warn("netconf: notification of an unknown module dropped", "module", ev.Notification.Module, "name", ev.Notification.Name)
		}
	}
}

// maxEdits bounds the edit list of one netconf-config-change.
const maxEdits = 64

// configChange is the RFC 6470 netconf-config-change of a commit.
func (h *Handler) configChange(ev api.Event) *node {
	n := &node{name: xmlName(ncnNS, "netconf-config-change")}
	by := &node{name: xmlName(ncnNS, "changed-by")}
	if ev.System {
		by.children = []*node{{name: xmlName(ncnNS, "server")}}
	} else {
		by.children = []*node{
			{name: xmlName(ncnNS, "username"), text: ev.User},
			{name: xmlName(ncnNS, "session-id"), text: strconv.FormatUint(uint64(ev.Owner.Session), 10)},
		}
	}
	n.children = append(n.children, by, &node{name: xmlName(ncnNS, "datastore"), text: "running"})
	changes := ev.Changes
	for _, p := range ev.WriteOnly {
		// A password set (its value is never published): a replace,
		// unless its user's deletion covers it.
		changes = append(slices.Clip(changes), api.Change{Path: p, Value: &gnmi.TypedValue{}})
	}
	var ix editIndex
	for _, e := range ix.topmost(changes, maxEdits) {
		target := &node{name: xmlName(ncnNS, "target"), text: xpathOf(e.target), nsDecl: pathNS}
		n.children = append(n.children, &node{name: xmlName(ncnNS, "edit"), children: []*node{
			target, {name: xmlName(ncnNS, "operation"), text: e.operation},
		}})
	}
	return n
}

// configEdit is one edit of netconf-config-change.
type configEdit struct {
	target    []*gnmi.PathElem
	operation string // create | delete | replace
}

// editIndex turns the leaf-level changes of a commit into the topmost
// nodes RFC 6470 asks for, in time linear in the changes: a list entry
// whose key leaf appeared or vanished was created or deleted as a whole,
// and the changes below it are part of that edit.
type editIndex struct {
	entries map[string]struct{} // the created or deleted entries, by path
	// lookups counts the prefixes looked up in entries: the work, at most
	// the depth of each change (tests count it).
	lookups int
}

// topmost returns the first max edits: the created or deleted entries not
// inside another, then the changes outside all of them, in commit order.
func (ix *editIndex) topmost(changes []api.Change, max int) []configEdit {
	var created []configEdit
	ix.entries = map[string]struct{}{}
	for _, c := range changes {
		elems := c.Path.GetElem()
		if n := len(elems); n >= 2 && hasKey(elems[n-2], elems[n-1].GetName()) {
			op := "create"
			if c.Value == nil {
				op = "delete"
			}
			created = append(created, configEdit{target: elems[:n-1], operation: op})
			ix.entries[api.PathString(&gnmi.Path{Elem: elems[:n-1]})] = struct{}{}
		}
	}
	var out []configEdit
	for _, e := range created {
		if len(out) == max {
			return out
		}
		if !ix.under(e.target, len(e.target)-1) { // not inside another created entry
			out = append(out, e)
		}
	}
	for _, c := range changes {
		if len(out) == max {
			return out
		}
		elems := c.Path.GetElem()
		if ix.under(elems, len(elems)) {
			continue
		}
		op := "replace"
		if c.Value == nil {
			op = "delete"
		}
		out = append(out, configEdit{target: elems, operation: op})
	}
	return out
}

// under reports whether one of the first n prefixes of path (path[:1] to
// path[:n]) is a created or deleted entry.
func (ix *editIndex) under(path []*gnmi.PathElem, n int) bool {
	if len(ix.entries) == 0 {
		return false
	}
	// PathString of a prefix is a prefix of PathString: build it once.
	var b strings.Builder
	for i := range n {
		b.WriteString(api.PathString(&gnmi.Path{Elem: path[i : i+1]}))
		ix.lookups++
		if _, ok := ix.entries[b.String()]; ok {
			return true
		}
	}
	return false
}

func hasKey(e *gnmi.PathElem, name string) bool {
	_, ok := e.GetKey()[name]
	return ok
}

// confirmedCommit is the RFC 6470 netconf-confirmed-commit of a transition
// of the store's confirmed-commit machine. The session parameters name who
// acted: a NETCONF session (its source-host while it lives), or session-id
// 0 for a client of another protocol; none on timeout, as RFC 6470 says,
// nor when the agent itself rolled back.
func (h *Handler) confirmedCommit(ev api.Event) *node {
	n := &node{name: xmlName(ncnNS, "netconf-confirmed-commit")}
	o := ev.Confirm.Outcome
	if o != api.ConfirmTimedOut && !ev.System {
		h.mu.Lock()
		var by *netconf.Session
		for _, st := range h.sessions {
			if owner(st.sess) == ev.Owner {
				by = st.sess
			}
		}
		h.mu.Unlock()
		if by != nil {
			n.children = sessionParms(by)
		} else {
			n.children = []*node{
				{name: xmlName(ncnNS, "username"), text: ev.User},
				{name: xmlName(ncnNS, "session-id"), text: strconv.FormatUint(uint64(ev.Owner.Session), 10)},
			}
		}
	}
	n.children = append(n.children, &node{name: xmlName(ncnNS, "confirm-event"), text: o.String()})
	if o == api.ConfirmStarted || o == api.ConfirmExtended {
		secs := (ev.Confirm.Timeout + time.Second - 1) / time.Second
		n.children = append(n.children, &node{name: xmlName(ncnNS, "timeout"), text: strconv.FormatInt(int64(secs), 10)})
	}
	return n
}

func sessionParms(s *netconf.Session) []*node {
	out := []*node{
		{name: xmlName(ncnNS, "username"), text: s.Username()},
		{name: xmlName(ncnNS, "session-id"), text: strconv.FormatUint(uint64(s.ID()), 10)},
	}
	if host, _, err := splitHost(s); err == nil {
		out = append(out, &node{name: xmlName(ncnNS, "source-host"), text: host})
	}
	return out
}

func splitHost(s *netconf.Session) (string, string, error) {
	if s.RemoteAddr() == nil {
		return "", "", errors.New("no address")
	}
	a := s.RemoteAddr().String()
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return "", "", errors.New("no port")
	}
	return strings.Trim(a[:i], "[]"), a[i+1:], nil
}

// notificationNode renders a YANG notification of the bus in its module's
// namespace; nil for a module the agent does not serve.
func notificationNode(n *api.Notification) *node {
	if n == nil {
		return nil
	}
	ns := ""
	for _, m := range pkyang.Modules {
		if m.Name == n.Module {
			ns = m.Namespace
		}
	}
	if ns == "" {
		return nil
	}
	out := &node{name: xmlName(ns, n.Name)}
	for _, l := range n.Leaves {
		switch v := l.Value.(type) {
		case []string:
			for _, s := range v {
				out.children = append(out.children, &node{name: xmlName(ns, l.Name), text: s})
			}
		case bool:
			out.children = append(out.children, &node{name: xmlName(ns, l.Name), text: strconv.FormatBool(v)})
		case time.Time:
			out.children = append(out.children, &node{name: xmlName(ns, l.Name), text: v.UTC().Format(time.RFC3339)})
		case nil:
		default:
			out.children = append(out.children, &node{name: xmlName(ns, l.Name), text: fmt.Sprint(v)})
		}
	}
	return out
}

// SessionStart implements netconf.SessionObserver.
func (h *Handler) SessionStart(s *netconf.Session) error {
	h.mu.Lock()
	h.sessions[s.ID()] = &sessState{sess: s, done: make(chan struct{})}
	h.mu.Unlock()
	h.replay.Add(h.clock.Now(), &node{name: xmlName(ncnNS, "netconf-session-start"), children: sessionParms(s)})
	return nil
}

// SessionEnd implements netconf.SessionObserver: it ends the session's
// subscription, releases its locks and rolls back its confirmed commit
// unless that has a persist id (RFC 6241 7.5 and 8.4).
func (h *Handler) SessionEnd(s *netconf.Session, t netconf.Termination) {
	h.mu.Lock()
	st := h.sessions[s.ID()]
	delete(h.sessions, s.ID())
	var sub *subscription
	if st != nil {
		sub = st.sub
	}
	h.mu.Unlock()
	if sub != nil {
		sub.cancel()
		h.mu.Lock()
		started := sub.started
		h.mu.Unlock()
		if started {
			<-sub.done
		}
	}
	// Its confirmed commit's cancel reaches subscribers from the bus.
	h.store.ReleaseOwner(context.Background(), owner(s))
	end := &node{name: xmlName(ncnNS, "netconf-session-end"), children: sessionParms(s)}
	if t.Reason == netconf.TermKilled {
		end.children = append(end.children, &node{name: xmlName(ncnNS, "killed-by"), text: strconv.FormatUint(uint64(t.KilledBy), 10)})
	}
	end.children = append(end.children, &node{name: xmlName(ncnNS, "termination-reason"), text: string(t.Reason)})
	h.replay.Add(h.clock.Now(), end)
	if st != nil {
		close(st.done)
	}
}
