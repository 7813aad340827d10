package telemetry

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestQueueCoalesces(t *testing.T) {
	q := NewQueue[string](3)
	for _, kv := range [][2]string{{"a", "a1"}, {"b", "b1"}, {"a", "a2"}} {
		if !q.Put(kv[0], kv[1]) {
			t.Fatalf("Put(%s) refused", kv[0])
		}
	}
	q.Mark("sync")
	q.Put("c", "c1")
	q.Mark("sync")
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	if q.Len() != 5 {
		t.Fatalf("Len = %d, want 5", q.Len())
	}
	// a is taken once, newest value, at the place of its newest put.
	if diff := cmp.Diff([]string{"b1", "a2"}, q.Take(nil, 2)); diff != "" {
		t.Fatalf("-want +got:\n%s", diff)
	}
	if diff := cmp.Diff([]string{"sync", "c1", "sync"}, q.Take(nil, 10)); diff != "" {
		t.Fatalf("-want +got:\n%s", diff)
	}
	if got := q.Take(nil, 10); len(got) != 0 || q.Len() != 0 {
		t.Fatalf("empty queue gave %v, Len %d", got, q.Len())
	}
}

// More distinct keys than max overflow the queue for good; a key already
// waiting still coalesces before that.
func TestQueueOverflows(t *testing.T) {
	q := NewQueue[int](2)
	q.Put("a", 1)
	q.Put("b", 2)
	if !q.Put("a", 3) {
		t.Fatal("a waiting key did not coalesce at the limit")
	}
	if q.Overflowed() {
		t.Fatal("overflowed at the limit")
	}
	if q.Put("c", 4) || !q.Overflowed() {
		t.Fatal("a third distinct key did not overflow")
	}
	if q.Put("a", 5) {
		t.Fatal("an overflowed queue took more")
	}
	q.Mark(6)
	if diff := cmp.Diff([]int{2, 3}, q.Take(nil, 10)); diff != "" {
		t.Fatalf("-want +got:\n%s", diff)
	}
}

// Many repeated puts of few keys stay bounded in memory: dead entries are
// compacted away.
func TestQueueCompacts(t *testing.T) {
	q := NewQueue[int](10)
	for i := range 100_000 {
		q.Put(string(rune('a'+i%3)), i)
		if i%1000 == 999 {
			q.Take(nil, 1)
		}
	}
	if len(q.ents) > 4096 {
		t.Fatalf("%d entries held for %d live values", len(q.ents), q.Len())
	}
}
