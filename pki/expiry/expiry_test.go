package expiry

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pkiagent/pkiagent/internal/clock"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func TestGradeAt(t *testing.T) {
	notBefore := t0.Add(-365 * day)
	notAfter := t0.Add(60 * day)
	type out struct {
		Status     Status
		Severity   Severity
		Category   string
		NextChange time.Time
	}
	tests := []struct {
		desc string
		now  time.Time
		want out
	}{
		{desc: "60 days left", now: t0, want: out{StatusValid, SeverityNone, "", notAfter.Add(-30 * day)}},
		{desc: "30 days and a second left", now: notAfter.Add(-30*day - time.Second), want: out{StatusValid, SeverityNone, "", notAfter.Add(-30 * day)}},
		{desc: "exactly 30 days left", now: notAfter.Add(-30 * day), want: out{StatusExpiringWithinMonth, SeverityMinor, CategoryExpiring, notAfter.Add(-7 * day)}},
		{desc: "8 days left", now: notAfter.Add(-8 * day), want: out{StatusExpiringWithinMonth, SeverityMinor, CategoryExpiring, notAfter.Add(-7 * day)}},
		{desc: "exactly 7 days left", now: notAfter.Add(-7 * day), want: out{StatusExpiringWithinWeek, SeverityMajor, CategoryExpiring, notAfter.Add(time.Nanosecond)}},
		{desc: "last instant", now: notAfter, want: out{StatusExpiringWithinWeek, SeverityMajor, CategoryExpiring, notAfter.Add(time.Nanosecond)}},
		{desc: "just expired", now: notAfter.Add(time.Nanosecond), want: out{StatusExpired, SeverityCritical, CategoryExpired, time.Time{}}},
		{desc: "long expired", now: notAfter.Add(1000 * day), want: out{StatusExpired, SeverityCritical, CategoryExpired, time.Time{}}},
		{desc: "not yet valid", now: notBefore.Add(-time.Second), want: out{StatusInvalid, SeverityCritical, CategoryInvalid, notBefore}},
		{desc: "first valid instant", now: notBefore, want: out{StatusValid, SeverityNone, "", notAfter.Add(-30 * day)}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			g := DefaultWindows.GradeAt(notBefore, notAfter, tc.now)
			got := out{g.Status, g.Severity, g.Category, g.NextChange}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("grade (-want +got):\n%s", diff)
			}
			if g.Remaining != notAfter.Sub(tc.now) || g.Text == "" {
				t.Errorf("remaining %v, text %q", g.Remaining, g.Text)
			}
		})
	}
}

func TestGradeText(t *testing.T) {
	notAfter := t0.Add(6*day + time.Hour)
	tests := []struct {
		desc string
		now  time.Time
		want string
	}{
		{desc: "days", now: t0, want: "expires in 6 days (2026-11-28T13:00:00Z)"},
		{desc: "one day", now: notAfter.Add(-day - time.Minute), want: "expires in 1 day (2026-11-28T13:00:00Z)"},
		{desc: "5-day certificate a second after issue", now: notAfter.Add(-5*day + time.Second), want: "expires in 5 days (2026-11-28T13:00:00Z)"},
		{desc: "4.5 days rounds up", now: notAfter.Add(-4*day - 12*time.Hour), want: "expires in 5 days (2026-11-28T13:00:00Z)"},
		{desc: "4.4 days rounds down", now: notAfter.Add(-4*day - 10*time.Hour), want: "expires in 4 days (2026-11-28T13:00:00Z)"},
		{desc: "23h40m is a day", now: notAfter.Add(-23*time.Hour - 40*time.Minute), want: "expires in 1 day (2026-11-28T13:00:00Z)"},
		{desc: "hours", now: notAfter.Add(-5*time.Hour - 10*time.Minute), want: "expires in 5 hours (2026-11-28T13:00:00Z)"},
		{desc: "one hour", now: notAfter.Add(-time.Hour), want: "expires in 1 hour (2026-11-28T13:00:00Z)"},
		{desc: "minutes", now: notAfter.Add(-10 * time.Minute), want: "expires in less than an hour (2026-11-28T13:00:00Z)"},
		{desc: "expired", now: notAfter.Add(time.Hour), want: "expired at 2026-11-28T13:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := DefaultWindows.GradeAt(t0.Add(-day), notAfter, tc.now).Text; got != tc.want {
				t.Errorf("text %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTrackerAcrossBoundaries evaluates one certificate every 6 hours with
// a fake clock from 40 days before expiry to 2 days after, then renews it:
// each alarm change is seen exactly once.
func TestTrackerAcrossBoundaries(t *testing.T) {
	clk := clock.NewFake(t0)
	tr := NewTracker(clk)
	notBefore, notAfter := t0.Add(-300*day), t0.Add(40*day)
	type seen struct {
		Change   Change
		Severity Severity
		Category string
		At       time.Time
	}
	var got []seen
	eval := func(nb, na time.Time) {
		g := DefaultWindows.GradeAt(nb, na, clk.Now())
		if tr, ok := tr.Set(Alarm{ID: "certificate/r1", Resource: "/certificates/certificate[name=r1]", Category: g.Category, Severity: g.Severity, Text: g.Text}); ok {
			got = append(got, seen{tr.Change, tr.Alarm.Severity, tr.Alarm.Category, clk.Now()})
		}
	}
	for clk.Now().Before(notAfter.Add(2 * day)) {
		eval(notBefore, notAfter)
		clk.Advance(6 * time.Hour)
	}
	renewedAt := clk.Now()
	eval(clk.Now().Add(-time.Hour), clk.Now().Add(365*day)) // renewed
	eval(clk.Now().Add(-time.Hour), clk.Now().Add(365*day)) // and checked again
	want := []seen{
		{Raised, SeverityMinor, CategoryExpiring, notAfter.Add(-30 * day)},
		{Regraded, SeverityMajor, CategoryExpiring, notAfter.Add(-7 * day)},
		{Regraded, SeverityCritical, CategoryExpired, notAfter.Add(6 * time.Hour)},
		{Cleared, SeverityCritical, CategoryExpired, renewedAt},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
	if len(tr.Active()) != 0 {
		t.Errorf("active alarms left: %v", tr.Active())
	}
}

// TestTrackerKeepsTimeRaisedAndText: a new text alone keeps time-raised; a
// re-grade sets it to the time of the re-grade (YANG: "raised or last
// re-graded").
func TestTrackerKeepsTimeRaisedAndText(t *testing.T) {
	clk := clock.NewFake(t0)
	tr := NewTracker(clk)
	tr.Set(Alarm{ID: "a", Category: CategoryExpiring, Severity: SeverityMinor, Text: "expires in 20 days"})
	clk.Advance(day)
	if _, ok := tr.Set(Alarm{ID: "a", Category: CategoryExpiring, Severity: SeverityMinor, Text: "expires in 19 days"}); ok {
		t.Error("a new text alone must not be a transition")
	}
	clk.Advance(day)
	trn, _ := tr.Set(Alarm{ID: "a", Category: CategoryExpiring, Severity: SeverityMajor, Text: "expires in 6 days"})
	want := Transition{
		Change:   Regraded,
		Alarm:    Alarm{ID: "a", Category: CategoryExpiring, Severity: SeverityMajor, Text: "expires in 6 days", TimeRaised: t0.Add(2 * day)},
		Previous: Alarm{ID: "a", Category: CategoryExpiring, Severity: SeverityMinor, Text: "expires in 19 days", TimeRaised: t0},
	}
	if diff := cmp.Diff(want, trn); diff != "" {
		t.Errorf("transition (-want +got):\n%s", diff)
	}
	if a, _ := tr.Get("a"); a.TimeRaised != t0.Add(2*day) {
		t.Errorf("time-raised after the re-grade = %v", a.TimeRaised)
	}
}

// TestTrackerRestore: restored alarms are the active set, with their
// times, and the same verdict again is no transition.
func TestTrackerRestore(t *testing.T) {
	tr := NewTracker(clock.NewFake(t0.Add(day)))
	tr.Set(Alarm{ID: "gone", Category: CategoryExpired, Severity: SeverityCritical})
	tr.Restore([]Alarm{{ID: "a", Category: CategoryExpired, Severity: SeverityCritical, Text: "expired", TimeRaised: t0}})
	if _, ok := tr.Set(Alarm{ID: "a", Category: CategoryExpired, Severity: SeverityCritical, Text: "expired"}); ok {
		t.Error("the restored verdict again is a transition")
	}
	if a, ok := tr.Get("a"); !ok || a.TimeRaised != t0 {
		t.Errorf("Get(a) = %+v, %v", a, ok)
	}
	if len(tr.Active()) != 1 {
		t.Errorf("active: %+v", tr.Active())
	}
}

func TestTrackerClearAndRetain(t *testing.T) {
	tr := NewTracker(clock.NewFake(t0))
	for _, id := range []string{"c", "a", "b"} {
		tr.Set(Alarm{ID: id, Resource: id, Severity: SeverityCritical, Category: CategoryInvalid})
	}
	if _, ok := tr.Clear("missing"); ok {
		t.Error("clearing an inactive alarm is not a transition")
	}
	if trn, ok := tr.Clear("b"); !ok || trn.Change != Cleared || trn.Alarm.ID != "b" {
		t.Errorf("Clear(b) = %+v, %v", trn, ok)
	}
	if _, ok := tr.Clear("b"); ok {
		t.Error("second Clear(b) must not be a transition")
	}
	got := tr.Retain(func(a Alarm) bool { return a.Resource == "a" })
	if len(got) != 1 || got[0].Alarm.ID != "c" || got[0].Change != Cleared {
		t.Errorf("Retain = %+v", got)
	}
	if a, ok := tr.Get("a"); !ok || a.TimeRaised != t0 {
		t.Errorf("Get(a) = %+v, %v", a, ok)
	}
	var ids []string
	for _, a := range tr.Active() {
		ids = append(ids, a.ID)
	}
	if diff := cmp.Diff([]string{"a"}, ids); diff != "" {
		t.Errorf("active (-want +got):\n%s", diff)
	}
}

func TestStrings(t *testing.T) {
	got := []string{SeverityNone.String(), SeverityMinor.String(), SeverityMajor.String(), SeverityCritical.String(), Raised.String(), Regraded.String(), Cleared.String()}
	want := []string{"none", "minor", "major", "critical", "raised", "regraded", "cleared"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestWindowsGradeAt(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(365 * 24 * time.Hour)
	w := Windows{Minor: 60 * 24 * time.Hour, Major: 14 * 24 * time.Hour}
	for _, tc := range []struct {
		left time.Duration
		want Status
		sev  Severity
	}{
		{61 * 24 * time.Hour, StatusValid, SeverityNone},
		{45 * 24 * time.Hour, StatusExpiringWithinMonth, SeverityMinor},
		{10 * 24 * time.Hour, StatusExpiringWithinWeek, SeverityMajor},
	} {
		g := w.GradeAt(nb, na, na.Add(-tc.left))
		if g.Status != tc.want || g.Severity != tc.sev {
			t.Errorf("%v left: got %s %s, want %s %s", tc.left, g.Status, g.Severity, tc.want, tc.sev)
		}
	}
	if g := (Windows{}).GradeAt(nb, na, na.Add(-20*24*time.Hour)); g.Status != StatusExpiringWithinMonth {
		t.Errorf("zero windows: got %s, want the defaults' expiring-within-month", g.Status)
	}
	if err := (Windows{Minor: 7 * 24 * time.Hour, Major: 30 * 24 * time.Hour}).Check(); err == nil || !strings.Contains(err.Error(), "major-days") {
		t.Errorf("major beyond minor: got %v", err)
	}
}
