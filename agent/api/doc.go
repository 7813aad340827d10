// Package api is the contract agent owns and shares with the PKI engine and
// the northbound servers: rpc inputs and outputs, callers and roles, error
// kinds, the commits, changes and events the engine consumes and produces,
// and the hooks (Validator, Applier, Finisher, StateSource, PKI) through
// which the datastore and the servers call the engine.
//
// It is a leaf: it imports only the generated model (gen) and the gNMI and
// ygot libraries. Every package names these types here, under one name:
// the engine (pki) imports this package and never the rest of agent, and
// agent never imports the engine.
package api
