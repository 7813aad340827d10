package telemetry

import (
	"errors"
	"testing"

	"github.com/pkiagent/pkiagent/agent/api"
)

// A subscriber that lets its buffer fill is dropped; the others, and the
// publisher, go on.
func TestBusDropsSlowSubscriber(t *testing.T) {
	b := NewBus()
	slow, fast := b.Subscribe(2), b.Subscribe(10)
	for i := range 5 {
		b.Publish(api.Event{CommitID: uint64(i)})
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != 2 || !errors.Is(slow.Err(), ErrSlowSubscriber) {
		t.Fatalf("slow subscriber: %d events, err %v", n, slow.Err())
	}
	for i := range 5 {
		if ev := <-fast.C; ev.CommitID != uint64(i) {
			t.Fatalf("event %d: commit %d", i, ev.CommitID)
		}
	}
	fast.Close()
	if _, ok := <-fast.C; ok || fast.Err() != nil {
		t.Fatalf("closed subscription still open or failed: %v", fast.Err())
	}
	b.Close()
	if _, ok := <-b.Subscribe(1).C; ok {
		t.Fatal("a subscription to a closed bus is open")
	}
}
