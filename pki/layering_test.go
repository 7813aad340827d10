package pki

import (
	"go/build"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/pki/api"
)

const module = "github.com/pkiagent/pkiagent/"

// TestLayering pins the direction of dependencies: agent and northbound
// call the engine, the engine knows them only through pki/api, and pki/api
// is a leaf. (Test files may import agent; agent never imports the engine.)
func TestLayering(t *testing.T) {
	for _, c := range []struct {
		dir     string
		allowed func(string) bool
	}{
		{".", func(p string) bool {
			return p != module+"agent" && !strings.HasPrefix(p, module+"northbound")
		}},
		{"api", func(p string) bool {
			return !strings.HasPrefix(p, module) || p == module+"gen"
		}},
	} {
		pkg, err := build.ImportDir(c.dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkg.Imports {
			if !c.allowed(p) {
				t.Errorf("package %s imports %s: the engine must depend inward only (see the package docs)", pkg.ImportPath, p)
			}
		}
	}
	agentPkg, err := build.Import(module+"agent", ".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range agentPkg.Imports {
		if p == module+"pki" {
			t.Errorf("agent imports the engine %s", p)
		}
	}
}

// The agent names are the api values and types, so errors.Is and
// errors.As see one set of kinds whichever package a caller names them by.
func TestAgentReexportsAPI(t *testing.T) {
	if agent.ErrInvalid != api.ErrInvalid || agent.ErrExists != api.ErrExists || agent.ErrMissing != api.ErrMissing {
		t.Fatal("agent error kinds are not the api values")
	}
	var _ *api.PathError = (*agent.PathError)(nil)
	var _ api.Event = agent.Event{}
	var _ *api.Commit = (*agent.Commit)(nil)
	var _ agent.PKI = (*Engine)(nil)
	var _ agent.Validator = (*Engine)(nil)
	var _ agent.Applier = (*Engine)(nil)
	var _ agent.StateSource = (*Engine)(nil)
}
