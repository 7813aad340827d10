// Package telemetry carries the agent's events to the servers that stream
// them: the Bus the datastore and the PKI engine publish commits, state
// changes and notifications on; the path-match Tree that finds the
// subscriptions a changed path concerns; the per-subscriber Queue that
// coalesces repeated updates of a path so a slow client never blocks the
// writer; and the Replay buffer of the last notifications for subscribers
// that ask for the past or fall behind.
//
// gNMI Subscribe reads the bus, matches with a Tree and queues per stream;
// NETCONF notifications read the bus into a Replay buffer that every
// subscribed session follows. Nothing here blocks a publisher: a bus
// subscriber or a queue that falls too far behind is dropped or ended,
// and a replay reader that falls behind skips what was overwritten.
//
// The package knows events only through the agent's contract (agent/api)
// and paths as gNMI path elements; cmd/pki-agent builds one Bus and hands
// it to the datastore, the engine and the servers.
package telemetry
