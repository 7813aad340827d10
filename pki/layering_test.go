package pki

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/pki/api"
)

const module = "github.com/pkiagent/pkiagent/"

// TestLayering pins the direction of dependencies: agent and northbound
// call the engine, the engine (pki and every package under it) knows them
// only through pki/api, and pki/api is a leaf. Test files may import agent;
// agent never imports the engine.
func TestLayering(t *testing.T) {
	engine := func(p string) bool {
		return p != module+"agent" && !strings.HasPrefix(p, module+"agent/") &&
			!strings.HasPrefix(p, module+"northbound")
	}
	leaf := func(p string) bool {
		return !strings.HasPrefix(p, module) || p == module+"gen"
	}
	err := filepath.WalkDir(".", func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if d.Name() == "testdata" {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(dir, 0)
		if _, ok := err.(*build.NoGoError); ok {
			return nil
		}
		if err != nil {
			return err
		}
		allowed := engine
		if dir == "api" {
			allowed = leaf
		}
		for _, p := range pkg.Imports {
			if !allowed(p) {
				t.Errorf("package %s imports %s: the engine depends inward only (see the package docs)", pkg.ImportPath, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
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
