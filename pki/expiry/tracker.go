package expiry

import (
	"sort"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
)

// Alarm is one active alarm, as /alarms/alarm[id] shows it.
type Alarm struct {
	ID       string
	Resource string
	Category string
	Severity Severity
	Text     string
	// TimeRaised is set by the Tracker when the alarm is raised and when
	// it is re-graded (the YANG's "raised or last re-graded"); a new text
	// alone keeps it.
	TimeRaised time.Time
}

// Change is the kind of a Transition.
type Change int

const (
	Raised Change = iota + 1
	Regraded
	Cleared
)

func (c Change) String() string {
	switch c {
	case Raised:
		return "raised"
	case Regraded:
		return "regraded"
	case Cleared:
		return "cleared"
	}
	return "unknown"
}

// Transition is what a caller publishes (notification, audit, counters).
type Transition struct {
	Change Change
	// Alarm is the alarm after the change; for Cleared, as it last was.
	Alarm Alarm
	// Previous is the alarm before a Regraded change.
	Previous Alarm
}

// Tracker remembers active alarms by ID and turns repeated evaluations
// into transitions: an alarm is raised once, re-graded only when its
// severity or category changes, and cleared once. It is safe for
// concurrent use; time comes from the injected clock.
type Tracker struct {
	clock  clock.Clock
	mu     sync.Mutex
	active map[string]Alarm
}

// NewTracker returns an empty tracker reading time from c.
func NewTracker(c clock.Clock) *Tracker {
	return &Tracker{clock: c, active: map[string]Alarm{}}
}

// Set records the current verdict for a.ID. SeverityNone clears the alarm.
// It returns the transition and true when something a subscriber must see
// happened. A changed Text alone is stored (state shows the latest) but is
// not a transition.
func (t *Tracker) Set(a Alarm) (Transition, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, ok := t.active[a.ID]
	switch {
	case !ok && a.Severity == SeverityNone:
		return Transition{}, false
	case !ok:
		a.TimeRaised = t.clock.Now()
		t.active[a.ID] = a
		return Transition{Change: Raised, Alarm: a}, true
	case a.Severity == SeverityNone:
		delete(t.active, a.ID)
		return Transition{Change: Cleared, Alarm: old}, true
	}
	if a.Severity != old.Severity || a.Category != old.Category {
		a.TimeRaised = t.clock.Now()
		t.active[a.ID] = a
		return Transition{Change: Regraded, Alarm: a, Previous: old}, true
	}
	a.TimeRaised = old.TimeRaised
	t.active[a.ID] = a
	return Transition{}, false
}

// Restore makes alarms (as Active returned them) the active set again,
// with their times and without transitions: the alarms a restarted agent
// had raised before it stopped.
func (t *Tracker) Restore(alarms []Alarm) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.active = make(map[string]Alarm, len(alarms))
	for _, a := range alarms {
		t.active[a.ID] = a
	}
}

// Clear clears the alarm id if it is active.
func (t *Tracker) Clear(id string) (Transition, bool) {
	return t.Set(Alarm{ID: id, Severity: SeverityNone})
}

// Retain clears every active alarm for which keep returns false (for
// example the alarms of a deleted certificate), in ID order.
func (t *Tracker) Retain(keep func(Alarm) bool) []Transition {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Transition
	for _, id := range t.idsLocked() {
		a := t.active[id]
		if !keep(a) {
			delete(t.active, id)
			out = append(out, Transition{Change: Cleared, Alarm: a})
		}
	}
	return out
}

// Active returns the active alarms in ID order.
func (t *Tracker) Active() []Alarm {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Alarm, 0, len(t.active))
	for _, id := range t.idsLocked() {
		out = append(out, t.active[id])
	}
	return out
}

// Get returns the active alarm id, if any.
func (t *Tracker) Get(id string) (Alarm, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.active[id]
	return a, ok
}

func (t *Tracker) idsLocked() []string {
	ids := make([]string, 0, len(t.active))
	for id := range t.active {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
