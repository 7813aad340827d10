// Package expiry grades a certificate's validity window at a given time
// (status and alarm severity), and tracks alarms so that each is raised
// once, re-graded when its severity or category changes, and cleared once.
package expiry

import (
	"fmt"
	"time"
)

// Windows of the expiry alarms (SPEC: minor within 30 days, major within
// 7 days, critical once expired).
const (
	MonthWindow = 30 * 24 * time.Hour
	WeekWindow  = 7 * 24 * time.Hour
)

// Status is the certificate status leaf of state.
type Status string

const (
	StatusValid               Status = "valid"
	StatusExpiringWithinMonth Status = "expiring-within-month"
	StatusExpiringWithinWeek  Status = "expiring-within-week"
	StatusExpired             Status = "expired"
	// StatusInvalid is used for a certificate that is not yet valid: the
	// agent cannot use it, so it is graded like any invalid certificate.
	StatusInvalid Status = "invalid"
)

// Severity of an alarm; SeverityNone means no alarm.
type Severity int

const (
	SeverityNone Severity = iota
	SeverityMinor
	SeverityMajor
	SeverityCritical
)

func (s Severity) String() string {
	switch s {
	case SeverityNone:
		return "none"
	case SeverityMinor:
		return "minor"
	case SeverityMajor:
		return "major"
	case SeverityCritical:
		return "critical"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// Alarm categories this package grades into.
const (
	CategoryExpiring = "certificate-expiring"
	CategoryExpired  = "certificate-expired"
	CategoryInvalid  = "certificate-invalid"
)

// Grade is the verdict on a validity window at one instant.
type Grade struct {
	Status   Status
	Severity Severity
	// Category is the alarm category that fits, "" when Severity is none.
	Category string
	// Remaining is NotAfter - now (negative once expired).
	Remaining time.Duration
	// NextChange is when the grade changes next if nothing else does
	// (zero once expired): schedule the next evaluation no later.
	NextChange time.Time
	// Text describes the grade for an alarm or log, e.g. "expires in 6
	// days (2026-12-01T00:00:00Z)".
	Text string
}

// Windows are the expiry alarm thresholds (/authority/expiry-alarms): a
// minor alarm within Minor of notAfter, a major one within Major.
type Windows struct {
	Minor, Major time.Duration
}

// DefaultWindows are 30 and 7 days.
var DefaultWindows = Windows{Minor: MonthWindow, Major: WeekWindow}

// Check says why w cannot grade (Major beyond Minor, or not positive).
func (w Windows) Check() error {
	if w.Major <= 0 || w.Minor <= 0 {
		return fmt.Errorf("expiry windows must be positive")
	}
	if w.Major > w.Minor {
		return fmt.Errorf("major-days %s is beyond minor-days %s", days(w.Major), days(w.Minor))
	}
	return nil
}

// GradeAt grades the window [notBefore, notAfter] at now. A certificate is
// valid through notAfter inclusive (RFC 5280) and expired after it; it is
// expiring within a week (the status keeps that name whatever w.Major
// is) when at most w.Major remains and within a month when at most
// w.Minor remains. A zero w grades with the default windows.
func (w Windows) GradeAt(notBefore, notAfter, now time.Time) Grade {
	if w == (Windows{}) {
		w = DefaultWindows
	}
	rem := notAfter.Sub(now)
	at := notAfter.UTC().Format(time.RFC3339)
	switch {
	case now.Before(notBefore):
		return Grade{Status: StatusInvalid, Severity: SeverityCritical, Category: CategoryInvalid, Remaining: rem, NextChange: notBefore,
			Text: fmt.Sprintf("not valid before %s", notBefore.UTC().Format(time.RFC3339))}
	case now.After(notAfter):
		return Grade{Status: StatusExpired, Severity: SeverityCritical, Category: CategoryExpired, Remaining: rem,
			Text: fmt.Sprintf("expired at %s", at)}
	case rem <= w.Major:
		return Grade{Status: StatusExpiringWithinWeek, Severity: SeverityMajor, Category: CategoryExpiring, Remaining: rem, NextChange: notAfter.Add(time.Nanosecond),
			Text: fmt.Sprintf("expires in %s (%s)", days(rem), at)}
	case rem <= w.Minor:
		return Grade{Status: StatusExpiringWithinMonth, Severity: SeverityMinor, Category: CategoryExpiring, Remaining: rem, NextChange: notAfter.Add(-w.Major),
			Text: fmt.Sprintf("expires in %s (%s)", days(rem), at)}
	}
	return Grade{Status: StatusValid, Severity: SeverityNone, Remaining: rem, NextChange: notAfter.Add(-w.Minor),
		Text: fmt.Sprintf("valid until %s", at)}
}

// days says how long d is in the unit an operator reads it in, rounded to
// the nearest: a certificate of 5 days (minus the seconds since it was
// issued) "expires in 5 days", not 4; under a day it says hours.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d < day-30*time.Minute {
		switch h := int((d + 30*time.Minute) / time.Hour); h {
		case 0:
			return "less than an hour"
		case 1:
			return "1 hour"
		default:
			return fmt.Sprintf("%d hours", h)
		}
	}
	if n := int((d + day/2) / day); n != 1 {
		return fmt.Sprintf("%d days", n)
	}
	return "1 day"
}
