// Package api is the contract agent owns and shares with the PKI engine and
// the northbound servers: rpc inputs and outputs, callers, roles and the
// role rules (CanWrite, CanRunRPC), the one object-name rule (CheckName),
// error kinds and the errors that carry structure across layers (PathError
// with its *gnmi.Path, InputError naming an rpc input leaf), the Owner of a
// lock or commit, the commits, changes and events the engine consumes and
// produces, and the hooks (Validator, Applier, Finisher, StateSource, PKI) through
// which the datastore and the servers call the engine.
//
// It is a leaf: it imports only the generated model (gen) and the gNMI and
// ygot libraries. Every package names these types here, under one name:
// the engine (pki) imports this package and never the rest of agent, and
// agent never imports the engine.
package api
