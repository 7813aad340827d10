package ops

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	pkyang "github.com/pkiagent/pkiagent/yang"
)

// record is one notification in the replay buffer.
type record struct {
	seq  uint64
	time time.Time
	body *node
}

// replay is a bounded buffer of the last notifications, in order, with a
// wake-up channel for subscribers waiting for the next one.
type replay struct {
	mu   sync.Mutex
	buf  []record // ring of cap size
	size int
	next uint64        // seq of the next record
	wake chan struct{} // closed at the next add
}

func newReplay(size int) *replay {
	return &replay{size: size, wake: make(chan struct{})}
}

func (r *replay) add(t time.Time, body *node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := record{seq: r.next, time: t, body: body}
	r.next++
	if len(r.buf) < r.size {
		r.buf = append(r.buf, rec)
	} else {
		r.buf[rec.seq%uint64(r.size)] = rec
	}
	close(r.wake)
	r.wake = make(chan struct{})
}

// from returns the records with seq >= seq still held, the seq after them
// and a channel closed when more arrive.
func (r *replay) from(seq uint64) ([]record, uint64, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := r.next - uint64(len(r.buf))
	if seq < first {
		seq = first
	}
	out := make([]record, 0, r.next-seq)
	for s := seq; s < r.next; s++ {
		out = append(out, r.buf[s%uint64(r.size)])
	}
	return out, r.next, r.wake
}

func (r *replay) position() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

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
	live := h.replay.position()
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
		recs, _, _ := h.replay.from(0)
		for _, r := range recs {
			if r.seq >= live || r.time.Before(*start) || (stop != nil && r.time.After(*stop)) {
				continue
			}
			if !send(r.time, r.body) {
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
		recs, after, wake := h.replay.from(next)
		if len(recs) > 0 && recs[0].seq > next {
			h.log.Warn("netconf: subscriber fell behind the replay buffer; notifications lost", "session", s.ID(), "lost", recs[0].seq-next)
		}
		for _, r := range recs {
			if stop != nil && r.time.After(*stop) {
				send(h.clock.Now(), &node{name: xmlName(manageNS, "notificationComplete")})
				return
			}
			if !send(r.time, r.body) {
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
	sub := h.bus
	defer func() { sub.Close() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				if errors.Is(sub.Err(), agent.ErrSlowSubscriber) {
					h.log.Error("netconf: fell behind the event bus; some notifications are lost; resubscribing")
					sub = h.store.Bus().Subscribe(4096)
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
		h.replay.add(ev.Time, h.configChange(ev))
	case api.EventConfirm:
		h.replay.add(ev.Time, h.confirmedCommit(ev))
	case api.EventNotification:
		if n := notificationNode(ev.Notification); n != nil {
			h.replay.add(ev.Time, n)
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
			{name: xmlName(ncnNS, "session-id"), text: strconv.FormatUint(uint64(holderID(ev.Owner)), 10)},
		}
	}
	n.children = append(n.children, by, &node{name: xmlName(ncnNS, "datastore"), text: "running"})
	changes := ev.Changes
	for _, p := range ev.WriteOnly {
		// A password set (its value is never published): a replace,
		// unless its user's deletion covers it.
		changes = append(slices.Clip(changes), api.Change{Path: p, Value: &gnmi.TypedValue{}})
	}
	for i, e := range topmostEdits(changes) {
		if i == maxEdits {
			break
		}
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

// topmostEdits turns leaf-level changes into the topmost nodes RFC 6470
// asks for: a list entry whose key leaf appeared or vanished was created or
// deleted as a whole, and the changes below it are part of that edit.
func topmostEdits(changes []api.Change) []configEdit {
	var created []configEdit // entries created or deleted
	for _, c := range changes {
		elems := c.Path.GetElem()
		if n := len(elems); n >= 2 && hasKey(elems[n-2], elems[n-1].GetName()) {
			op := "create"
			if c.Value == nil {
				op = "delete"
			}
			created = append(created, configEdit{target: elems[:n-1], operation: op})
		}
	}
	covered := func(path []*gnmi.PathElem, self int) bool {
		return slices.ContainsFunc(created, func(e configEdit) bool {
			return (self < 0 || len(e.target) < len(created[self].target)) && underEntry(path, e.target)
		})
	}
	var out []configEdit
	for i, e := range created {
		if !covered(e.target, i) { // not inside another created entry
			out = append(out, e)
		}
	}
	for _, c := range changes {
		elems := c.Path.GetElem()
		if covered(elems, -1) {
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

func hasKey(e *gnmi.PathElem, name string) bool {
	_, ok := e.GetKey()[name]
	return ok
}

// underEntry reports whether path lies in (or is) the list entry entry.
func underEntry(path, entry []*gnmi.PathElem) bool {
	if len(path) < len(entry) {
		return false
	}
	for i, e := range entry {
		if path[i].GetName() != e.GetName() || !maps.Equal(path[i].GetKey(), e.GetKey()) {
			return false
		}
	}
	return true
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
				{name: xmlName(ncnNS, "session-id"), text: strconv.FormatUint(uint64(holderID(ev.Owner)), 10)},
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
	h.replay.add(h.clock.Now(), &node{name: xmlName(ncnNS, "netconf-session-start"), children: sessionParms(s)})
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
	h.replay.add(h.clock.Now(), end)
	if st != nil {
		close(st.done)
	}
}
