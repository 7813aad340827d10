// Package cmp enrolls certificates over CMPv2: it builds, protects and sends
// the ir, cr and kur transactions of RFC 4210 (with RFC 9480 updates, CRMF
// RFC 4211, CMP over HTTP RFC 6712), polls while the CA answers waiting,
// confirms what it received, and checks every response and issued
// certificate against the trusted CA before handing it back.
//
// It is a client only, with no state between transactions: the caller keeps
// keys, certificates and schedules. Messages are written by hand on
// golang.org/x/crypto/cryptobyte because no usable Go CMP library exists.
package cmp
