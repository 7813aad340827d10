package yang

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestYanglintAcceptsModules runs libyang's yanglint over every module and
// fails on any error or warning.
func TestYanglintAcceptsModules(t *testing.T) {
	bin, err := exec.LookPath("yanglint")
	if err != nil {
		t.Fatalf("yanglint not installed (make test installs libyang2-tools): %v", err)
	}
	args := append([]string{"-p", "."}, fileNames()...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("yanglint %v: %v\n%s", args, err, out)
	}
}

// TestGeneratedCodeIsFresh regenerates gen/ into a temporary file with the
// go:generate directives of this package and compares it byte for byte.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the ygot generator")
	}
	src, err := os.ReadFile("yang.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^//go:generate go tool generator (.*)$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no generator directive in yang.go")
	}
	out := filepath.Join(t.TempDir(), "pki.go")
	var args []string
	for _, a := range strings.Fields(string(m[1])) {
		if strings.HasPrefix(a, "-output_file=") {
			a = "-output_file=" + out
		}
		args = append(args, a)
	}
	cmd := exec.Command("go", append([]string{"tool", "generator"}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, b)
	}
	if b, err := exec.Command("gofmt", "-w", out).CombinedOutput(); err != nil {
		t.Fatalf("gofmt: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../gen/pki.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("gen/pki.go is stale: run `make generate` and commit the result")
	}
}

func TestSource(t *testing.T) {
	s, err := Source("pki-authority", "")
	if err != nil || !strings.Contains(s, "namespace \"urn:pkiagent:yang:pki-authority\"") {
		t.Fatalf("Source: %v", err)
	}
	if !strings.Contains(s, "revision "+Main.Revision) {
		t.Fatalf("module text lacks revision %s", Main.Revision)
	}
	if _, err := Source("pki-authority", "1999-01-01"); err == nil {
		t.Fatal("wrong revision accepted")
	}
	if _, err := Source("nope", ""); err == nil {
		t.Fatal("unknown module accepted")
	}
}

// TestServedModulesMatchFiles checks that every embedded file is a served
// module and that the name, revision, namespace, prefix and features listed
// for each are those of its text.
func TestServedModulesMatchFiles(t *testing.T) {
	listed := map[string]bool{}
	for _, m := range Served() {
		if listed[m.Name] {
			t.Errorf("module %s listed twice", m.Name)
		}
		listed[m.Name] = true
		src, err := Source(m.Name, m.Revision)
		if err != nil {
			t.Errorf("Source(%s): %v", m.Name, err)
			continue
		}
		first := func(re string) string {
			if m := regexp.MustCompile(re).FindStringSubmatch(src); m != nil {
				return m[1]
			}
			return ""
		}
		if got := first(`(?m)^\s*revision\s+"?([0-9-]+)"?`); got != m.Revision {
			t.Errorf("%s: newest revision in the file is %s, listed %s", m.Name, got, m.Revision)
		}
		if got := first(`(?m)^\s*namespace\s*\n?\s*"([^"]+)"`); got != m.Namespace {
			t.Errorf("%s: namespace in the file is %q, listed %q", m.Name, got, m.Namespace)
		}
		if got := first(`(?m)^\s*prefix\s+"?([A-Za-z0-9_.-]+)"?;`); got != m.Prefix {
			t.Errorf("%s: prefix in the file is %q, listed %q", m.Name, got, m.Prefix)
		}
		for _, f := range m.Features {
			if !regexp.MustCompile(`(?m)^\s*feature\s+` + regexp.QuoteMeta(f) + `\s*\{`).MatchString(src) {
				t.Errorf("%s: feature %s is not defined in the module", m.Name, f)
			}
		}
	}
	for _, f := range fileNames() {
		if name := strings.TrimSuffix(f, ".yang"); !listed[name] {
			t.Errorf("%s is embedded but not listed in Modules or NETCONF", f)
		}
	}
	if _, err := Source("nope", ""); !errors.Is(err, ErrNotServed) {
		t.Errorf("Source(nope) = %v, want ErrNotServed", err)
	}
}

// TestYanglintAcceptsFeatures compiles the modules with the features the
// agent claims enabled, as a client does from the hello.
func TestYanglintAcceptsFeatures(t *testing.T) {
	bin, err := exec.LookPath("yanglint")
	if err != nil {
		t.Fatalf("yanglint not installed (make test installs libyang2-tools): %v", err)
	}
	args := []string{"-p", "."}
	for _, m := range Served() {
		if len(m.Features) > 0 {
			args = append(args, "-F", m.Name+":"+strings.Join(m.Features, ","))
		}
	}
	args = append(args, fileNames()...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("yanglint %v: %v\n%s", args, err, out)
	}
}

// TestPinnedModulesAreDebians compares each pinned protocol module with the
// Debian file it was copied from, when that package is installed
// (libyuma-base comes with yangcli, libyang2 with yanglint); ietf-netconf
// is libnetconf2's embedded text, checked by its revision statement only.
func TestPinnedModulesAreDebians(t *testing.T) {
	const yuma, ly = "/usr/share/yuma/modules/", "/usr/share/yang/modules/libyang/"
	sources := map[string]string{
		"ietf-inet-types":            yuma + "ietf/ietf-inet-types@2013-07-15.yang",
		"ietf-yang-types":            yuma + "ietf/ietf-yang-types@2013-07-15.yang",
		"ietf-netconf-acm":           yuma + "ietf/ietf-netconf-acm@2018-02-14.yang",
		"ietf-netconf-monitoring":    yuma + "ietf/ietf-netconf-monitoring@2010-10-04.yang",
		"ietf-netconf-notifications": yuma + "ietf/ietf-netconf-notifications@2012-02-06.yang",
		"ietf-netconf-with-defaults": yuma + "ietf/ietf-netconf-with-defaults@2011-06-01.yang",
		"notifications":              yuma + "ietf-derived/notifications.yang",
		"nc-notifications":           yuma + "ietf-derived/nc-notifications.yang",
		"yuma-ncx":                   yuma + "netconfcentral/yuma-ncx.yang",
		"ietf-yang-library":          ly + "ietf-yang-library@2019-01-04.yang",
		"ietf-datastores":            ly + "ietf-datastores@2018-02-14.yang",
		"ietf-yang-metadata":         ly + "ietf-yang-metadata@2016-08-05.yang",
	}
	// The one change made to a copy (see NETCONF).
	patched := map[string][2]string{
		"ietf-netconf-notifications": {`when "../confirm-event != 'timeout'";`, `when "confirm-event != 'timeout'";`},
	}
	for _, m := range Served() {
		if m.Name == Main.Name || m.Name == System.Name || m.Name == "ietf-netconf" {
			continue
		}
		src, ok := sources[m.Name]
		if !ok {
			t.Errorf("%s: no Debian source recorded", m.Name)
			continue
		}
		want, err := os.ReadFile(src)
		if err != nil {
			t.Logf("%s: %v (package not installed; not compared)", m.Name, err)
			continue
		}
		got, err := Source(m.Name, "")
		if err != nil {
			t.Fatal(err)
		}
		w := string(want)
		if p, ok := patched[m.Name]; ok {
			w = strings.Replace(w, p[0], p[1], 1)
		}
		if got != w {
			t.Errorf("%s differs from %s beyond the documented change", m.Name, src)
		}
	}
	nc, err := Source("ietf-netconf", "2013-09-29")
	if err != nil || !strings.Contains(nc, "revision 2013-09-29 {") || !strings.Contains(nc, "import ietf-netconf-acm { prefix nacm; }") {
		t.Errorf("ietf-netconf is not libnetconf2's 2013-09-29 text: %v", err)
	}
}

// TestSourceNotServedInOperatorWords: an unserved module is named as such,
// with the modules that are served, and no file-system words.
func TestSourceNotServedInOperatorWords(t *testing.T) {
	_, err := Source("no-such-module", "")
	if err == nil || !strings.Contains(err.Error(), "module no-such-module is not served (the modules served are pki-authority") ||
		strings.Contains(err.Error(), "file does not exist") || !errors.Is(err, ErrNotServed) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

// fileNames lists the embedded module files, sorted.
func fileNames() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yang") {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}
