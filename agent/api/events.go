package api

import (
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
)

// EventKind says what an Event carries.
type EventKind int

const (
	// EventConfig: a commit changed running; Changes holds the leaves.
	EventConfig EventKind = iota
	// EventState: operational state changed (certificates, alarms, CRL
	// state, counters); Changes holds the leaves (Value nil = deleted).
	EventState
	// EventNotification: a YANG notification (alarm-notification,
	// crl-update, certificate-event, or a NETCONF base notification).
	EventNotification
	// EventConfirm: the pending confirmed commit (RFC 6241 8.4, gNMI
	// gnmi_ext.Commit) changed state; Confirm says how, User and Owner who
	// acted (System when the agent itself did, on timeout or shutdown).
	// It follows the config event of the commit that caused it, if any.
	EventConfirm
)

// ConfirmOutcome is a transition of the confirmed-commit state machine.
type ConfirmOutcome int

const (
	ConfirmStarted   ConfirmOutcome = iota + 1 // a confirmed commit is pending
	ConfirmExtended                            // a follow-up commit or new timeout extended it
	ConfirmConfirmed                           // it was confirmed and stays
	ConfirmCancelled                           // it was cancelled (or its session ended) and rolled back
	ConfirmTimedOut                            // it was not confirmed in time and rolled back
)

// String returns the RFC 6470 confirm-event name of o: start, extend,
// complete, cancel or timeout.
func (o ConfirmOutcome) String() string {
	switch o {
	case ConfirmStarted:
		return "start"
	case ConfirmExtended:
		return "extend"
	case ConfirmConfirmed:
		return "complete"
	case ConfirmCancelled:
		return "cancel"
	case ConfirmTimedOut:
		return "timeout"
	}
	return "unknown"
}

// ConfirmChange is what an EventConfirm reports.
type ConfirmChange struct {
	Outcome ConfirmOutcome
	// Commit is the latest commit of the confirmed commit (the one that
	// started or extended it).
	Commit uint64
	// Timeout is the time left until the rollback (start and extend).
	Timeout time.Duration
}

// Event is what the bus carries. Subscribers must not modify it.
type Event struct {
	Kind     EventKind
	Time     time.Time
	CommitID uint64
	User     string
	// Owner is the session that made a config commit (agent.CommitOptions.Owner);
	// NETCONF reports its session id in netconf-config-change.
	Owner   Owner
	Changes []Change
	// WriteOnly are the write-only leaves (passwords) a config commit
	// set or deleted: their paths only, never their values, which are
	// not in Changes either.
	WriteOnly    []*gnmi.Path
	Notification *Notification
	// System is set when the agent itself made the change, not a client:
	// the rollback of a confirmed commit that timed out or was left pending
	// at shutdown (NETCONF reports changed-by server).
	System bool
	// Confirm is set on EventConfirm.
	Confirm *ConfirmChange
}

// Notification is a YANG notification with its leaves in schema order.
type Notification struct {
	// Module and Name identify it, e.g. "pki-authority", "alarm-notification".
	Module string
	Name   string
	Leaves []Leaf
}

// Leaf is one value of a notification: a string, bool, uint64, or []string
// for a leaf-list.
type Leaf struct {
	Name  string
	Value any
}

// Publisher carries events to their subscribers (telemetry.Bus). Publish
// must not block: the store and the engine call it under their locks, so
// subscribers see commits, and what each staged, in order.
type Publisher interface {
	Publish(Event)
}
