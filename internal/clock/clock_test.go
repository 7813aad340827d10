package clock

import (
	"testing"
	"time"
)

func TestFakeFiresTimersInOrderOnlyWhenDue(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	t1 := f.NewTimer(2 * time.Second)
	t2 := f.NewTimer(time.Second)
	fired := make(chan struct{})
	f.AfterFunc(3*time.Second, func() { close(fired) })

	f.Advance(500 * time.Millisecond)
	select {
	case <-t2.C():
		t.Fatal("timer fired early")
	default:
	}
	f.Advance(time.Second)
	if got := <-t2.C(); !got.Equal(start.Add(1500 * time.Millisecond)) {
		t.Fatalf("t2 fired at %v", got)
	}
	if !t1.Stop() {
		t.Fatal("t1 should have been active")
	}
	f.Advance(2 * time.Second)
	<-fired
	select {
	case <-t1.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if n := f.PendingTimers(); n != 0 {
		t.Fatalf("PendingTimers = %d, want 0", n)
	}
}

func TestFakeResetAndTimerArmed(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	armed := f.TimerArmed()
	tm := f.NewTimer(time.Hour)
	<-armed
	tm.Reset(time.Minute)
	f.Advance(time.Minute)
	<-tm.C()
}
