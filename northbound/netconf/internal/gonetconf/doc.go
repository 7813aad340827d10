// Package gonetconf is the client of github.com/Juniper/go-netconf v0.1.1
// (package netconf), copied unchanged but for the telnet transport and the
// debug logging, which pull in modules this repository does not have
// (github.com/ziutek/telnet). Tests use it to check the server against that
// client's real behaviour: base:1.0 only, "]]>]]>" padded with spaces at
// 4096-byte boundaries, RPCReply.Ok never set. BSD 2-clause, see LICENSE.
package gonetconf
