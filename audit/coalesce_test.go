package audit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
)

type memWriter struct {
	mu  sync.Mutex
	evs []Event
}

func (m *memWriter) Write(ev Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, ev)
	return nil
}

func (m *memWriter) events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.evs...)
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func refusal(src string) Event {
	return Event{User: "admin", Type: "system.login", Description: "login refused", Detail: map[string]any{"source": src}}
}

// A burst from one key writes its first event and, when the window ends,
// one summary counting the others.
func TestCoalescerWritesFirstAndSummary(t *testing.T) {
	clk := clock.NewFake(t0)
	w := &memWriter{}
	c := NewCoalescer(w, clk, nil, time.Minute, 0)
	for i := range 100 {
		got := c.Coalesce("login 192.0.2.66", refusal("192.0.2.66"))
		if got != (i == 0) {
			t.Fatalf("event %d written: %v", i, got)
		}
	}
	c.Coalesce("login 198.51.100.1", refusal("198.51.100.1"))
	if n := len(w.events()); n != 2 {
		t.Fatalf("%d records during the burst, want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	armed := clk.TimerArmed()
	go func() { defer close(done); c.Run(ctx) }()
	<-armed
	clk.Advance(59 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if n := len(w.events()); n != 2 {
		t.Fatalf("%d records before the window ended", n)
	}
	clk.Advance(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for len(w.events()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	evs := w.events()
	if len(evs) != 3 {
		t.Fatalf("records after the window: %+v", evs)
	}
	sum := evs[2]
	if sum.Detail["coalesced"] != 99 || sum.Detail["source"] != "192.0.2.66" || !strings.Contains(sum.Description, "99 more") {
		t.Fatalf("summary %+v", sum)
	}
	// A new burst opens a new window.
	if !c.Coalesce("login 192.0.2.66", refusal("192.0.2.66")) {
		t.Fatal("first event of a new window not written")
	}
	cancel()
	<-done
}

// Keys beyond maxKeys share one summary; Flush writes what is open.
func TestCoalescerBoundsKeys(t *testing.T) {
	clk := clock.NewFake(t0)
	w := &memWriter{}
	c := NewCoalescer(w, clk, nil, time.Minute, 2)
	for i := range 50 {
		c.Coalesce("login "+string(rune('a'+i)), refusal(string(rune('a'+i))))
	}
	if n := len(w.events()); n != 3 {
		t.Fatalf("%d records for 50 keys with 2 followed, want 3 (2 keys, 1 overflow)", n)
	}
	c.Flush()
	evs := w.events()
	last := evs[len(evs)-1]
	if last.Detail["coalesced"] != 47 || last.Detail["source"] != nil || last.User != "" {
		t.Fatalf("overflow summary %+v", last)
	}
}
