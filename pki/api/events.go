package api

import "time"

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
)

// Event is what the bus carries. Subscribers must not modify it.
type Event struct {
	Kind     EventKind
	Time     time.Time
	CommitID uint64
	User     string
	// Owner is the session that made a config commit (agent.CommitOptions.Owner),
	// e.g. "netconf session 4"; NETCONF reports it in netconf-config-change.
	Owner        string
	Changes      []Change
	Notification *Notification
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
