package gnmi

import (
	"context"
	"errors"
	"sync"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/agent"
)

// busBuffer is how many events the dispatcher may lag behind the bus. It
// only copies changes into per-stream queues, so it never lags for long.
const busBuffer = 8192

// dispatcher is the one bus subscriber of the server: it matches each
// config or state change against the ON_CHANGE subscriptions of every
// stream and queues it there, without ever blocking on a client.
type dispatcher struct {
	s *Server

	mu      sync.RWMutex
	sub     *agent.Subscription
	streams map[*stream]struct{}
}

func newDispatcher(s *Server) *dispatcher {
	// Subscribe at once so no event is lost between New and Run.
	return &dispatcher{s: s, sub: s.store.Bus().Subscribe(busBuffer), streams: map[*stream]struct{}{}}
}

func (d *dispatcher) add(st *stream) {
	d.mu.Lock()
	d.streams[st] = struct{}{}
	d.mu.Unlock()
}

func (d *dispatcher) remove(st *stream) {
	d.mu.Lock()
	delete(d.streams, st)
	d.mu.Unlock()
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
			if !errors.Is(sub.Err(), agent.ErrSlowSubscriber) {
				d.failAll(status.Error(codes.Unavailable, "the agent is shutting down"))
				<-ctx.Done()
				return ctx.Err()
			}
			// Streams missed events: they must resynchronise.
			d.s.log.Error("gNMI telemetry fell behind the event bus; ending every ON_CHANGE stream so clients resubscribe")
			d.mu.Lock()
			d.sub = d.s.store.Bus().Subscribe(busBuffer)
			d.mu.Unlock()
			d.failAll(status.Error(codes.Unavailable, "telemetry fell behind the agent's changes; resubscribe"))
		}
	}
}

// change is a bus change prepared once for every stream.
type change struct {
	path []*gnmi.PathElem
	key  string
	val  *gnmi.TypedValue // nil: deleted
	enc  map[gnmi.Encoding]*gnmi.TypedValue
}

func (c *change) encoded(e gnmi.Encoding) *gnmi.TypedValue {
	if c.val == nil {
		return nil
	}
	if v, ok := c.enc[e]; ok {
		return v
	}
	v, err := encodeLeaf(c.path, c.val, e)
	if err != nil {
		v = c.val
	}
	c.enc[e] = v
	return v
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
	chs := make([]*change, 0, len(evChanges))
	for _, c := range evChanges {
		if c.Path == nil {
			continue
		}
		chs = append(chs, &change{path: c.Path.GetElem(), key: api.PathString(c.Path), val: c.Value, enc: map[gnmi.Encoding]*gnmi.TypedValue{}})
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for st := range d.streams {
		st.offer(chs, ts)
	}
}
