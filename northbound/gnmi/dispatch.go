package gnmi

import (
	"context"
	"errors"
	"sync"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/telemetry"
)

// busBuffer is how many events the dispatcher may lag behind the bus. It
// only copies changes into per-stream queues, so it never lags for long.
const busBuffer = 8192

// dispatcher is the one bus subscriber of the server: it looks each
// config or state change up in the match tree of the ON_CHANGE
// subscriptions of every stream and queues it in the streams it concerns,
// without ever blocking on a client.
type dispatcher struct {
	s   *Server
	bus *telemetry.Bus

	mu      sync.RWMutex
	sub     *telemetry.Subscription
	streams map[*stream]struct{}
	tree    *telemetry.Tree[*stream]
}

func newDispatcher(s *Server, bus *telemetry.Bus) *dispatcher {
	// Subscribe at once so no event is lost between New and Run.
	return &dispatcher{s: s, bus: bus, sub: bus.Subscribe(busBuffer), streams: map[*stream]struct{}{}, tree: telemetry.NewTree[*stream]()}
}

func (d *dispatcher) add(st *stream) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.streams[st] = struct{}{}
	for _, sb := range st.subs {
		if sb.onChange {
			d.tree.Add(sb.pat, st)
		}
	}
}

func (d *dispatcher) remove(st *stream) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.streams, st)
	for _, sb := range st.subs {
		if sb.onChange {
			d.tree.Remove(sb.pat, st)
		}
	}
}

// failAll ends every registered stream with err.
func (d *dispatcher) failAll(err error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for st := range d.streams {
		st.fatal(err)
	}
}

func (d *dispatcher) run(ctx context.Context) error {
	for {
		d.mu.RLock()
		sub := d.sub
		d.mu.RUnlock()
		select {
		case <-ctx.Done():
			sub.Close()
			return ctx.Err()
		case ev, ok := <-sub.C:
			if ok {
				d.deliver(ev)
				continue
			}
			if !errors.Is(sub.Err(), telemetry.ErrSlowSubscriber) {
				d.failAll(status.Error(codes.Unavailable, "the agent is shutting down"))
				<-ctx.Done()
				return ctx.Err()
			}
			// Streams missed events: they must resynchronise.
			d.s.log.Error("gNMI telemetry fell behind the event bus; ending every ON_CHANGE stream so clients resubscribe")
			d.mu.Lock()
			d.sub = d.bus.Subscribe(busBuffer)
			d.mu.Unlock()
			d.failAll(status.Error(codes.Unavailable, "telemetry fell behind the agent's changes; resubscribe"))
		}
	}
}

// change is a bus change prepared once for every stream: its update (or
// delete) is built once per encoding and shared by the streams, which
// only read it. The dispatcher alone prepares it.
type change struct {
	path []*gnmi.PathElem
	key  string
	val  *gnmi.TypedValue // nil: deleted
	enc  map[gnmi.Encoding]item
}

// item returns the queue item of the change in encoding e, stamped ts.
func (c *change) item(e gnmi.Encoding, ts int64) item {
	if it, ok := c.enc[e]; ok {
		return it
	}
	v := c.val
	if v != nil {
		if ev, err := encodeLeaf(c.path, v, e); err == nil {
			v = ev
		}
	}
	it := newItem(c.key, c.path, v, ts)
	if c.enc == nil {
		c.enc = map[gnmi.Encoding]item{}
	}
	c.enc[e] = it
	return it
}

func (d *dispatcher) deliver(ev api.Event) {
	if ev.Kind != api.EventConfig && ev.Kind != api.EventState || len(ev.Changes) == 0 {
		return
	}
	ts := ev.Time.UnixNano()
	if ev.Time.IsZero() {
		ts = d.s.clock.Now().UnixNano()
	}
	evChanges := ev.Changes
	if ev.Kind == api.EventConfig {
		evChanges = withDefaultChanges(evChanges)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, c := range evChanges {
		if c.Path == nil {
			continue
		}
		ch := &change{path: c.Path.GetElem(), key: api.PathString(c.Path), val: c.Value}
		offer := func(st *stream) { st.offer(ch, ts) }
		if c.Value == nil {
			d.tree.MatchSubtree(ch.path, offer)
		} else {
			d.tree.Match(ch.path, offer)
		}
	}
}
