// Package yang holds the pinned YANG modules of pki-agent, embedded so the
// northbound servers can advertise and serve them (NETCONF get-schema), and
// the go:generate directive that compiles them into package gen with ygot.
package yang

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:generate go tool generator -path=. -output_file=../gen/pki.go -package_name=gen -generate_fakeroot -fakeroot_name=device -shorten_enum_leaf_names -typedef_enum_with_defmod -generate_getters -generate_leaf_getters -generate_append -generate_delete -generate_simple_unions -generate_populate_defaults -ignore_unsupported -exclude_modules=ietf-inet-types,ietf-yang-types pki-authority.yang
//go:generate gofmt -w ../gen/pki.go

//go:embed *.yang
var files embed.FS

// Module identifies one YANG module of the agent.
type Module struct {
	Name      string
	Revision  string
	Namespace string
	Prefix    string
}

// Main is the agent's own module.
var Main = Module{
	Name:      "pki-authority",
	Revision:  "2026-11-23",
	Namespace: "urn:pkiagent:yang:pki-authority",
	Prefix:    "pka",
}

// Modules lists every module the agent implements or imports.
var Modules = []Module{
	Main,
	{Name: "ietf-inet-types", Revision: "2013-07-15", Namespace: "urn:ietf:params:xml:ns:yang:ietf-inet-types", Prefix: "inet"},
	{Name: "ietf-yang-types", Revision: "2013-07-15", Namespace: "urn:ietf:params:xml:ns:yang:ietf-yang-types", Prefix: "yang"},
}

// Source returns the text of the named module. A revision, when given, must
// match the pinned one.
func Source(name, revision string) (string, error) {
	for _, m := range Modules {
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
	names := make([]string, len(Modules))
	for i, m := range Modules {
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

// FileNames lists the embedded module files, sorted.
func FileNames() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yang") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}
