// Package gnmi serves the agent's datastore over gNMI: Capabilities, Get,
// Set as one transaction (with the commit-confirmed extension) and
// Subscribe (ONCE, POLL, STREAM with ON_CHANGE, SAMPLE, TARGET_DEFINED and
// heartbeats), with users and roles checked on every RPC.
//
// Paths may carry an empty origin, "openconfig" or "pki-authority"; the
// target is ignored. Get and Subscribe paths may use "*" (any element or
// key value), a list element without keys (every entry) and "..." (any
// depth). Get returns, per path, one update per selected node with JSON
// or JSON_IETF values, or one update per leaf with typed scalars for PROTO.
// Both JSON encodings are RFC 7951 (lists as arrays); JSON_IETF qualifies
// top-level members with the module name, JSON names no module, so what
// either returns for a config path can be Set back as it is. Subscribe
// sends one update per leaf in the encoding asked for (json_val,
// json_ietf_val or a typed scalar), with the value a Get of the leaf has.
// Config leaves left at their YANG default are reported with it (as
// NETCONF's with-defaults report-all), by Get and Subscribe; ON_CHANGE
// streams get them with a new entry and when a set leaf is deleted.
//
// Set maps delete to agent.OpRemove, replace to OpReplace and update to
// OpMerge, applies them in that order to one transaction and commits it:
// everything or nothing. union_replace is refused (Unimplemented). A JSON
// value holding null or state (config false) is refused naming where.
// gRPC gzip compression is accepted.
//
// Errors: InvalidArgument names the path and the reason (bad path, unknown
// element, wrong type, range, pattern, state path, a key leaf changed on
// its own); FailedPrecondition when a NETCONF session locks running or
// candidate or a confirmed commit is pending; Aborted when the PKI engine
// or the disk refused the commit (nothing changed); Unauthenticated and
// PermissionDenied for users and roles; ResourceExhausted for the limits
// below; Internal for a panic of any service on the server (certz
// included), logged once, the agent going on. Every message is rendered by
// internal/redact.
//
// Limits (Limits, DefaultLimits): messages up to 16 MiB each way; a Set
// holds at most 10,000 operations; at most 1,024 Subscribe streams at once
// and 64 per user, 256 subscriptions per stream; a stream queues at most
// 100,000 distinct paths its client has not read (repeated updates of a
// path coalesce into one) and is ended with ResourceExhausted beyond that,
// or when its client has not read for 60 s while updates wait; SAMPLE
// intervals and heartbeats are at least 100 ms (sample_interval 0 means
// 100 ms); one Get or subscription path selects at most 1,048,576 nodes.
//
// Telemetry: one dispatcher reads the agent's telemetry.Bus, looks each
// config or state change up in a telemetry.Tree of the ON_CHANGE (or
// TARGET_DEFINED) subscriptions of every STREAM and puts it in the
// telemetry.Queue of the streams it concerns, so a slow client never slows
// commits or other clients, and a change costs the streams it reaches. Subscriptions to paths that do not exist yet
// stay open and receive the changes that create them.
package gnmi
