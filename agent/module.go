package agent

import (
	"fmt"
	"maps"
	"sync"

	"github.com/openconfig/goyang/pkg/yang"

	pkyang "github.com/pkiagent/pkiagent/yang"
)

// module is the root of the data model: the goyang entry of pki-authority,
// parsed from the embedded sources, with the top-level data nodes of the
// other data modules added. Unlike the ygot schema (Schema, RootEntry) it keeps the rpcs,
// the notifications and the AST (for the statement order of children).
var module = sync.OnceValues(func() (*yang.Entry, error) {
	ms := yang.NewModules()
	for _, m := range pkyang.Modules {
		src, err := pkyang.Source(m.Name, "")
		if err != nil {
			return nil, err
		}
		if err := ms.Parse(src, m.Name+".yang"); err != nil {
			return nil, fmt.Errorf("parse YANG module %s: %w", m.Name, err)
		}
	}
	if errs := ms.Process(); len(errs) > 0 {
		return nil, fmt.Errorf("process YANG modules: %v", errs)
	}
	main, errs := ms.GetModule(pkyang.Main.Name)
	if len(errs) > 0 {
		return nil, fmt.Errorf("YANG module %s: %v", pkyang.Main.Name, errs)
	}
	// The top-level nodes of the other data modules (pki-agent-system:
	// data and rpcs) join the root, each in its own module's namespace.
	root := *main
	root.Dir = maps.Clone(main.Dir)
	for _, m := range pkyang.Modules {
		if m.ImportOnly || m.Name == pkyang.Main.Name {
			continue
		}
		e, errs := ms.GetModule(m.Name)
		if len(errs) > 0 {
			return nil, fmt.Errorf("YANG module %s: %v", m.Name, errs)
		}
		for name, c := range e.Dir {
			if c.Kind != yang.NotificationEntry {
				root.Dir[name] = c
			}
		}
	}
	return &root, nil
})

// Module returns the root of the data model: module pki-authority with its
// rpcs and notifications, and the top-level data nodes and rpcs of
// pki-agent-system. The embedded module is tested to load, so an error
// here is a build defect.
func Module() (*yang.Entry, error) { return module() }
