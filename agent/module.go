package agent

import (
	"fmt"
	"sync"

	"github.com/openconfig/goyang/pkg/yang"

	pkyang "github.com/pkiagent/pkiagent/yang"
)

// module is the goyang entry of pki-authority, parsed from the embedded
// sources. Unlike the ygot schema (Schema, RootEntry) it keeps the rpcs,
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
	e, errs := ms.GetModule(pkyang.Main.Name)
	if len(errs) > 0 {
		return nil, fmt.Errorf("YANG module %s: %v", pkyang.Main.Name, errs)
	}
	return e, nil
})

// Module returns the goyang entry of module pki-authority with its rpcs
// and notifications. The embedded module is tested to load, so an error
// here is a build defect.
func Module() (*yang.Entry, error) { return module() }
