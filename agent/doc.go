// Package agent holds the configuration datastores of pki-agent (running and
// a shared candidate), the transactions that edit them, the commit pipeline
// (validate -> apply -> persist -> publish, all or nothing), locks, confirmed
// commit and the commit history. Each commit, and what the appliers staged
// for it, is published in order through the api.Publisher the store is given
// (cmd/pki-agent hands it a telemetry.Bus), which carries config changes,
// state changes and notifications to the northbound servers.
//
// Roots are immutable once published: an edit copies only the nodes on the
// path it touches and shares everything else, so the cost of a transaction
// follows the size of its change, not of the datastore. Callers that receive
// a *gen.Device from this package must treat it as read-only.
//
// Dependencies point inward: northbound -> agent <- pki. The contract agent
// shares with the PKI engine and the servers (Commit, Change, Event, the rpc
// inputs and outputs, Caller, ErrInvalid and the other error kinds the
// engine returns, the Validator, Applier, Finisher, StateSource and PKI
// hooks) is package agent/api, and every package names it there; the engine
// imports agent/api only, and agent never imports the engine.
//
// One file a concern: datastore.go the Store, locks.go, candidate.go (with
// regions.go, the nodes an edit writes, and conflict.go), commit.go the
// pipeline, confirm.go, history.go, state.go the state sources, disk.go
// persistence, tx.go transactions over tree.go's copy-on-write trees,
// values.go and leaf.go the one value checker (NETCONF's too, CheckValue),
// screen.go the key-material screening, rpc.go the rpcs' entry with the
// YANG defaults of module.go's schema.
package agent
