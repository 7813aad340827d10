package telemetry

import (
	"sync"
	"time"
)

// Record is one notification of a Replay buffer.
type Record[T any] struct {
	Seq  uint64
	Time time.Time
	V    T
}

// Replay is a bounded buffer of the last notifications, in order, that
// readers follow by sequence number: a reader asks for what came from its
// position on and waits on a channel for more. Adding never blocks; a
// reader that falls more than the buffer's size behind skips what was
// overwritten and sees the gap in the sequence numbers. Safe for
// concurrent use.
type Replay[T any] struct {
	mu   sync.Mutex
	buf  []Record[T] // ring of cap size
	size int
	next uint64        // seq of the next record
	wake chan struct{} // closed at the next Add
}

// NewReplay returns a buffer of the last size records (at least one).
func NewReplay[T any](size int) *Replay[T] {
	return &Replay[T]{size: max(size, 1), wake: make(chan struct{})}
}

// Add appends v, stamped t, and wakes the waiting readers.
func (r *Replay[T]) Add(t time.Time, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := Record[T]{Seq: r.next, Time: t, V: v}
	r.next++
	if len(r.buf) < r.size {
		r.buf = append(r.buf, rec)
	} else {
		r.buf[rec.Seq%uint64(r.size)] = rec
	}
	close(r.wake)
	r.wake = make(chan struct{})
}

// From returns the records with Seq >= seq still held, the seq that
// follows them and a channel closed when more arrive.
func (r *Replay[T]) From(seq uint64) ([]Record[T], uint64, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := r.next - uint64(len(r.buf))
	seq = min(max(seq, first), r.next)
	out := make([]Record[T], 0, r.next-seq)
	for s := seq; s < r.next; s++ {
		out = append(out, r.buf[s%uint64(r.size)])
	}
	return out, r.next, r.wake
}

// Next returns the seq the next record will have: a reader that starts
// there sees only what is added from now on.
func (r *Replay[T]) Next() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}
