package gnmi

import (
	"sync"

	"github.com/openconfig/gnmi/proto/gnmi"
)

// item is one pending update (val set), delete (val nil) or, with sync
// set, a sync_response marker.
type item struct {
	key  string
	path []*gnmi.PathElem
	val  *gnmi.TypedValue
	ts   int64
	sync bool
	// final marks the sync_response that ends a ONCE subscription.
	final bool
}

type qent struct {
	it   item
	dead bool
}

// queue holds what a stream has yet to send, coalesced per path: a path
// updated again before the client took the first value is sent once, with
// the newest value, at the place of its newest write (so an update and a
// later delete of its parent keep their order). put never blocks; when
// more than max distinct paths wait, the queue overflows and the stream is
// ended. Safe for concurrent use.
type queue struct {
	mu       sync.Mutex
	ents     []*qent
	head     int
	dead     int
	byKey    map[string]*qent
	max      int
	overflow bool
	ready    chan struct{}
	markers  uint64
}

func newQueue(max int) *queue {
	return &queue{byKey: map[string]*qent{}, max: max, ready: make(chan struct{}, 1)}
}

// put queues it and reports false when the queue overflowed.
func (q *queue) put(it item) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.overflow {
		return false
	}
	if it.sync {
		q.markers++
		q.ents = append(q.ents, &qent{it: it})
	} else {
		if old, ok := q.byKey[it.key]; ok {
			old.dead = true
			q.dead++
		} else if len(q.byKey) >= q.max {
			q.overflow = true
			q.signal()
			return false
		}
		e := &qent{it: it}
		q.byKey[it.key] = e
		q.ents = append(q.ents, e)
	}
	q.signal()
	return true
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take removes up to n items, oldest first.
func (q *queue) take(n int) []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []item
	for q.head < len(q.ents) && len(out) < n {
		e := q.ents[q.head]
		q.ents[q.head] = nil
		q.head++
		if e.dead {
			q.dead--
			continue
		}
		if !e.it.sync {
			delete(q.byKey, e.it.key)
		}
		out = append(out, e.it)
	}
	if q.head == len(q.ents) {
		q.ents, q.head = q.ents[:0], 0
	} else if q.head > 1024 && q.head > len(q.ents)/2 {
		q.ents = append([]*qent(nil), q.ents[q.head:]...)
		q.head = 0
	}
	if q.dead > 1024 && q.dead > (len(q.ents)-q.head)/2 {
		live := make([]*qent, 0, len(q.ents)-q.head-q.dead)
		for _, e := range q.ents[q.head:] {
			if !e.dead {
				live = append(live, e)
			}
		}
		q.ents, q.head, q.dead = live, 0, 0
	}
	return out
}

// pending reports how many items wait.
func (q *queue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ents) - q.head - q.dead
}

func (q *queue) overflowed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.overflow
}
