// Package api is the vocabulary the PKI engine shares with the datastore and
// the northbound servers: rpc inputs and outputs, callers and roles, error
// kinds, and the commits, changes and events the engine consumes and
// produces, with the hooks (Validator, Applier, Finisher, StateSource, PKI) through
// which the datastore and the servers call the engine.
//
// It is a leaf: it imports only the generated model (gen) and the gNMI and
// ygot libraries. Package agent re-exports these names (agent.Commit is
// api.Commit, agent.ErrInvalid is api.ErrInvalid), so the engine (pki)
// depends on this package and never on agent, and agent never on the engine.
package api
