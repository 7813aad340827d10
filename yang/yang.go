// Package yang holds the pinned YANG modules of pki-agent, embedded so the
// northbound servers can advertise and serve them (NETCONF get-schema), and
// the go:generate directive that compiles them into package gen with ygot.
package yang

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

//go:generate go tool generator -path=. -output_file=../gen/pki.go -package_name=gen -generate_fakeroot -fakeroot_name=device -shorten_enum_leaf_names -typedef_enum_with_defmod -generate_getters -generate_leaf_getters -generate_append -generate_delete -generate_simple_unions -generate_populate_defaults -ignore_unsupported -exclude_modules=ietf-inet-types,ietf-yang-types pki-authority.yang pki-agent-system.yang
//go:generate gofmt -w ../gen/pki.go

//go:embed *.yang
var files embed.FS

// Module identifies one YANG module of the agent.
type Module struct {
	Name      string
	Revision  string
	Namespace string
	Prefix    string
	// ImportOnly marks a module served only for the definitions other
	// modules import from it (RFC 7895 conformance-type import).
	ImportOnly bool
	// Features are the features of the module the agent supports.
	Features []string
}

// Main is the agent's PKI module.
var Main = Module{
	Name:      "pki-authority",
	Revision:  "2026-12-02",
	Namespace: "urn:pkiagent:yang:pki-authority",
	Prefix:    "pka",
}

// System is the module of the agent's own configuration: its users.
var System = Module{
	Name:      "pki-agent-system",
	Revision:  "2026-12-02",
	Namespace: "urn:pkiagent:yang:pki-agent-system",
	Prefix:    "pks",
}

// Modules lists the data model: the agent's modules and what they import.
// gNMI serves these; ygot compiles pki-authority and pki-agent-system from
// them.
var Modules = []Module{
	Main,
	System,
	{Name: "ietf-inet-types", Revision: "2013-07-15", Namespace: "urn:ietf:params:xml:ns:yang:ietf-inet-types", Prefix: "inet", ImportOnly: true},
	{Name: "ietf-yang-types", Revision: "2013-07-15", Namespace: "urn:ietf:params:xml:ns:yang:ietf-yang-types", Prefix: "yang", ImportOnly: true},
}

// NETCONF lists the modules of the NETCONF protocol that the NETCONF
// server implements besides the data model, and their imports. Their
// files are pinned copies from Debian 12 packages:
//
//   - ietf-netconf@2013-09-29: the text libnetconf2 2.0.24 embeds
//     (libnetconf2-2, identical to its modules/ietf-netconf@2013-09-29.yang),
//     the revision libnetconf2 clients load; RFC 6241 with NACM extensions.
//   - ietf-netconf-acm@2018-02-14, ietf-netconf-monitoring@2010-10-04,
//     ietf-netconf-notifications@2012-02-06, ietf-netconf-with-defaults@2011-06-01:
//     libyuma-base 2.13, /usr/share/yuma/modules/ietf/. In
//     ietf-netconf-notifications the when of "uses common-session-parms"
//     reads "confirm-event" instead of "../confirm-event", as in
//     libnetconf2's and netopeer2's copies (the context node of a when on
//     uses is the notification; libyang warns about the original).
//   - notifications@2008-07-14 and nc-notifications@2008-07-14 (RFC 5277 in
//     YANG) and yuma-ncx@2012-01-13, which notifications imports:
//     libyuma-base 2.13, /usr/share/yuma/modules/{ietf-derived,netconfcentral}/.
//   - ietf-yang-library@2019-01-04, ietf-datastores@2018-02-14 and
//     ietf-yang-metadata@2016-08-05 (RFC 7952: the with-defaults and
//     edit-config attributes are annotations; libyang clients ask for it
//     with ietf-netconf): libyang2 2.1.30, /usr/share/yang/modules/libyang/
//     (the revisions libyang 2 clients hold built in).
//
// Only capabilities the server really has are features here: not startup,
// url or xpath (filters are subtree only).
var NETCONF = []Module{
	{Name: "ietf-netconf", Revision: "2013-09-29", Namespace: "urn:ietf:params:xml:ns:netconf:base:1.0", Prefix: "nc",
		Features: []string{"writable-running", "candidate", "confirmed-commit", "rollback-on-error", "validate"}},
	{Name: "ietf-netconf-monitoring", Revision: "2010-10-04", Namespace: "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring", Prefix: "ncm"},
	{Name: "ietf-netconf-notifications", Revision: "2012-02-06", Namespace: "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications", Prefix: "ncn"},
	{Name: "ietf-netconf-with-defaults", Revision: "2011-06-01", Namespace: "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults", Prefix: "ncwd"},
	{Name: "notifications", Revision: "2008-07-14", Namespace: "urn:ietf:params:xml:ns:netconf:notification:1.0", Prefix: "ncEvent"},
	{Name: "nc-notifications", Revision: "2008-07-14", Namespace: "urn:ietf:params:xml:ns:netmod:notification", Prefix: "manageEvent"},
	{Name: "ietf-yang-library", Revision: "2019-01-04", Namespace: "urn:ietf:params:xml:ns:yang:ietf-yang-library", Prefix: "yanglib"},
	{Name: "ietf-netconf-acm", Revision: "2018-02-14", Namespace: "urn:ietf:params:xml:ns:yang:ietf-netconf-acm", Prefix: "nacm", ImportOnly: true},
	{Name: "ietf-datastores", Revision: "2018-02-14", Namespace: "urn:ietf:params:xml:ns:yang:ietf-datastores", Prefix: "ds", ImportOnly: true},
	{Name: "ietf-yang-metadata", Revision: "2016-08-05", Namespace: "urn:ietf:params:xml:ns:yang:ietf-yang-metadata", Prefix: "md", ImportOnly: true},
	{Name: "yuma-ncx", Revision: "2012-01-13", Namespace: "http://netconfcentral.org/ns/yuma-ncx", Prefix: "ncx", ImportOnly: true},
}

// Served returns every module the NETCONF server lists and serves with
// get-schema: the data model, then the protocol modules.
func Served() []Module {
	return append(append([]Module(nil), Modules...), NETCONF...)
}

// Source returns the text of the named module. A revision, when given, must
// match the pinned one.
func Source(name, revision string) (string, error) {
	served := Served()
	for _, m := range served {
		if m.Name != name {
			continue
		}
		if revision != "" && revision != m.Revision {
			return "", fmt.Errorf("module %s: revision %s is %w (have %s)", name, revision, ErrNotServed, m.Revision)
		}
		b, err := fs.ReadFile(files, name+".yang")
		if err != nil {
			return "", fmt.Errorf("module %s is %w: it is listed, but its YANG text is not in this build", name, ErrNotServed)
		}
		return string(b), nil
	}
	names := make([]string, len(served))
	for i, m := range served {
		names[i] = m.Name
	}
	return "", fmt.Errorf("module %s is %w (the modules served are %s)", name, ErrNotServed, strings.Join(names, ", "))
}

// ErrNotServed: Source was asked for a module or revision it does not
// serve. Its text says so without file-system words.
var ErrNotServed = errNotServed{}

type errNotServed struct{}

func (errNotServed) Error() string { return "not served" }

// Is makes errors.Is(err, fs.ErrNotExist) hold, as before.
func (errNotServed) Is(target error) bool { return target == fs.ErrNotExist }
