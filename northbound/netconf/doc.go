// Package netconf serves NETCONF (RFC 6241) over SSH (RFC 6242): the SSH
// server with its host key and authentication, the hello exchange and the
// switch to chunked framing, and one goroutine-owned loop per session that
// decodes each <rpc>, hands it to a Handler and writes the reply. The
// operations themselves (get, edit-config, lock, ...) belong to the Handler.
//
// Framing lives in package framing, XML decoding and encoding (requests,
// replies, rpc-errors, notifications) in package ncxml.
//
// Limits: messages over Config.MaxMessageSize (16 MiB by default) end the
// session after a too-big rpc-error; malformed XML or framing ends the
// session after a malformed-message rpc-error (operation-failed for base:1.0
// clients, which RFC 6241 does not allow to receive malformed-message); at
// most Config.MaxSessions sessions run at once, Config.MaxSessionsPerUser
// of one user; a session silent for Config.IdleTimeout (10 minutes by
// default) ends. Sessions and the server keep the RFC 6022 counters
// (Session.Counters, Server.Statistics).
package netconf
