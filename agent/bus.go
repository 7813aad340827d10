package agent

import (
	"errors"
	"sync"

	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

// ErrSlowSubscriber ends a subscription whose buffer filled up: the
// subscriber fell behind by more events than it may buffer.
var ErrSlowSubscriber = errors.New("subscriber fell too far behind and was dropped")

// Bus fans events out to subscribers. Publish never blocks: each subscriber
// has a bounded buffer, and one that lets it fill is dropped with
// ErrSlowSubscriber rather than slowing down commits.
type Bus struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*Subscription]struct{}{}} }

// Subscription receives events on C until it is closed, by the subscriber
// (Close), by the bus (Close) or for falling behind (Err).
type Subscription struct {
	C   <-chan api.Event
	c   chan api.Event
	bus *Bus
	err error
}

// Subscribe returns a subscription with a buffer of size events.
func (b *Bus) Subscribe(size int) *Subscription {
	if size <= 0 {
		size = 1024
	}
	ch := make(chan api.Event, size)
	s := &Subscription{C: ch, c: ch, bus: b}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(ch)
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

// Publish delivers ev to every subscriber without blocking.
func (b *Bus) Publish(ev api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.c <- ev:
		default:
			s.err = ErrSlowSubscriber
			delete(b.subs, s)
			close(s.c)
		}
	}
}

// Subscribers reports how many subscriptions are live.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Close ends every subscription.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		close(s.c)
	}
}

// Close ends the subscription; C is closed.
func (s *Subscription) Close() {
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.c)
	}
}

// Err reports why the subscription ended: ErrSlowSubscriber, or nil.
func (s *Subscription) Err() error {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.err
}

// mergeInto merges src into dst (lists by key).
func mergeInto(dst, src *gen.Device) error {
	return ygot.MergeStructInto(dst, src)
}

// View returns running (or candidate) config merged with operational state,
// as a fresh tree the caller owns.
func (s *Store) View(ds Datastore, withState bool) (*gen.Device, error) {
	cfg, err := ygot.DeepCopy(s.Get(ds))
	if err != nil {
		return nil, err
	}
	out := cfg.(*gen.Device)
	if !withState {
		return out, nil
	}
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	if err := mergeInto(out, st); err != nil {
		return nil, err
	}
	return out, nil
}
