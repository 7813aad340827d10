// Package ops implements the NETCONF operations of pki-agent over the agent
// datastore: it is the netconf.Handler that turns each decoded <rpc> into
// store calls and their results (or failures) into replies and rpc-errors.
//
// It serves get, get-config, edit-config, copy-config, delete-config,
// lock, unlock, validate, commit (confirmed, persist), cancel-commit,
// discard-changes, kill-session, with-defaults (RFC 6243), subtree filters
// (RFC 6241 section 6), get-schema (RFC 6022) of every module in package
// yang, the rpcs of module pki-authority, and RFC 5277 notifications with a
// bounded replay buffer (telemetry.Replay over the agent's bus; RFC 6470
// base notifications included, netconf-config-change built from the
// commit's changes in time linear in them). <get>
// reports, beside the data model, the protocol state: /netconf-state (RFC
// 6022), /yang-library (RFC 8525) and /modules-state (RFC 7895), and
// /netconf/streams (RFC 5277); the hello lists every implemented module
// with its features (Capabilities). XML is converted to and from the
// datastore's trees through the goyang schema of the embedded YANG module.
//
// Semantics worth knowing: an edit-config is all or nothing whatever its
// error-option (stop-on-error and rollback-on-error behave alike;
// continue-on-error applies the edits that succeed on their own and reports
// the others). On the candidate, test-then-set and set check types and
// structure; full validation (mandatory leaves, PKI checks) happens at
// validate, test-only and commit. On running (:writable-running) every edit
// is a commit. Write operations, locks and kill-session need role admin.
//
// Limits: a subtree filter or config element nests at most as deep as the
// rpc decoder allows (ncxml.MaxDepth); the replay buffer keeps the last
// DefaultReplaySize notifications.
package ops
