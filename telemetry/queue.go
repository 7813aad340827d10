package telemetry

import "sync"

// Queue holds what one subscriber has yet to send, coalesced per key: a
// key put again before the subscriber took the first value is taken once,
// with the newest value, at the place of its newest put (so an update and
// a later delete of its parent keep their order). Markers (Mark) are never
// coalesced. Put never blocks; when more than max distinct keys wait, the
// queue overflows: it takes nothing more and the subscriber is to be
// ended. Safe for concurrent use by one or more writers and one reader.
type Queue[T any] struct {
	mu       sync.Mutex
	ents     []*qent[T]
	head     int
	dead     int
	byKey    map[string]*qent[T]
	max      int
	overflow bool
	ready    chan struct{}
}

type qent[T any] struct {
	key    string
	v      T
	marker bool
	dead   bool
}

// NewQueue returns a queue of at most max distinct keys.
func NewQueue[T any](max int) *Queue[T] {
	return &Queue[T]{byKey: map[string]*qent[T]{}, max: max, ready: make(chan struct{}, 1)}
}

// Put queues v under key and reports false when the queue overflowed.
func (q *Queue[T]) Put(key string, v T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.overflow {
		return false
	}
	if old, ok := q.byKey[key]; ok {
		old.dead = true
		q.dead++
	} else if len(q.byKey) >= q.max {
		q.overflow = true
		q.signal()
		return false
	}
	e := &qent[T]{key: key, v: v}
	q.byKey[key] = e
	q.ents = append(q.ents, e)
	q.signal()
	return true
}

// Mark queues v after everything put so far, never coalesced nor counted
// against max (a gNMI sync_response). It is dropped once the queue
// overflowed.
func (q *Queue[T]) Mark(v T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.overflow {
		return
	}
	q.ents = append(q.ents, &qent[T]{v: v, marker: true})
	q.signal()
}

func (q *Queue[T]) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Ready receives a value when something was queued since the last one: a
// reader waits on it, then Takes until Take returns nothing.
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Take removes up to n values, oldest first, and appends them to dst.
func (q *Queue[T]) Take(dst []T, n int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	for taken := 0; q.head < len(q.ents) && taken < n; {
		e := q.ents[q.head]
		q.ents[q.head] = nil
		q.head++
		if e.dead {
			q.dead--
			continue
		}
		if !e.marker {
			delete(q.byKey, e.key)
		}
		dst = append(dst, e.v)
		taken++
	}
	if q.head == len(q.ents) {
		q.ents, q.head = q.ents[:0], 0
	} else if q.head > 1024 && q.head > len(q.ents)/2 {
		q.ents = append([]*qent[T](nil), q.ents[q.head:]...)
		q.head = 0
	}
	if q.dead > 1024 && q.dead > (len(q.ents)-q.head)/2 {
		live := make([]*qent[T], 0, len(q.ents)-q.head-q.dead)
		for _, e := range q.ents[q.head:] {
			if !e.dead {
				live = append(live, e)
			}
		}
		q.ents, q.head, q.dead = live, 0, 0
	}
	return dst
}

// Len reports how many values wait.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ents) - q.head - q.dead
}

// Overflowed reports whether more than max distinct keys were put.
func (q *Queue[T]) Overflowed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.overflow
}
