package pki

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/agent/api"
)

const module = "github.com/pkiagent/pkiagent/"

// TestLayering pins the direction of dependencies over the whole module
// (test files included, except where said):
//   - the engine (pki and every package under it) knows the agent only
//     through its contract, agent/api, and never imports northbound;
//   - agent/api is a leaf: it imports nothing of the module but gen;
//   - agent never imports the engine or northbound (its tests may);
//   - northbound never imports the engine;
//   - telemetry knows the agent only through agent/api, and neither agent
//     nor the engine imports it (cmd hands them the bus);
//   - nothing imports northbound packages from outside northbound, or cmd,
//     except cmd itself.
func TestLayering(t *testing.T) {
	inModule := func(p string) bool { return strings.HasPrefix(p, module) }
	under := func(p, dir string) bool { return p == module+dir || strings.HasPrefix(p, module+dir+"/") }
	err := filepath.WalkDir("..", func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && d.Name() != ".." {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(dir, 0)
		if _, ok := err.(*build.NoGoError); ok {
			return nil
		}
		if err != nil {
			return err
		}
		self := pkg.ImportPath
		if !inModule(self) {
			rel, _ := filepath.Rel("..", dir)
			self = module + filepath.ToSlash(rel)
		}
		check := func(imports []string, tests bool) {
			for _, p := range imports {
				if !inModule(p) {
					continue
				}
				var why string
				switch {
				case under(self, "agent/api") && !under(p, "gen"):
					why = "agent/api is a leaf"
				case under(self, "pki") && under(p, "agent") && !under(p, "agent/api") && !tests:
					why = "the engine knows the agent only through agent/api"
				case under(self, "pki") && under(p, "northbound"):
					why = "the engine never calls the servers"
				case under(self, "agent") && !tests && (under(p, "pki") || under(p, "northbound")):
					why = "agent depends on neither the engine nor the servers"
				case under(self, "northbound") && under(p, "pki") && !tests:
					why = "the servers reach the engine only through agent/api"
				case under(self, "telemetry") && under(p, "agent") && !under(p, "agent/api"):
					why = "telemetry knows the agent's events only through agent/api"
				case (under(self, "agent") || under(self, "pki")) && under(p, "telemetry") && !tests:
					why = "the store and the engine publish through an interface; cmd wires the bus"
				case under(p, "northbound") && !under(self, "northbound") && !under(self, "cmd"):
					why = "only cmd wires the servers"
				case under(p, "cmd") && !under(self, "cmd"):
					why = "nothing imports cmd"
				}
				if why != "" {
					t.Errorf("package %s imports %s: %s (see the package docs)", self, p, why)
				}
			}
		}
		check(pkg.Imports, false)
		check(append(pkg.TestImports, pkg.XTestImports...), true)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The engine implements the hooks of the contract.
var (
	_ api.PKI         = (*Engine)(nil)
	_ api.Validator   = (*Engine)(nil)
	_ api.Applier     = (*Engine)(nil)
	_ api.StateSource = (*Engine)(nil)
)
