package telemetry

import (
	"errors"
	"sync"

	"github.com/pkiagent/pkiagent/agent/api"
)

// ErrSlowSubscriber ends a subscription whose buffer filled up: the
// subscriber fell behind by more events than it may buffer.
var ErrSlowSubscriber = errors.New("subscriber fell too far behind and was dropped")

// DefaultBuffer is the buffer of a subscription made with size 0.
const DefaultBuffer = 1024

// Bus fans events out to subscribers. Publish never blocks: each subscriber
// has a bounded buffer, and one that lets it fill is dropped with
// ErrSlowSubscriber rather than slowing down commits. Safe for concurrent
// use; events reach every subscriber in the order they were published.
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

// Subscribe returns a subscription with a buffer of size events
// (DefaultBuffer when size <= 0). It sees every event published after it.
func (b *Bus) Subscribe(size int) *Subscription {
	if size <= 0 {
		size = DefaultBuffer
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

// Close ends every subscription; later ones are closed at once.
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
