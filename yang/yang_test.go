package yang

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	args := append([]string{"-p", "."}, FileNames()...)
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

// TestSourceNotServedInOperatorWords: an unserved module is named as such,
// with the modules that are served, and no file-system words.
func TestSourceNotServedInOperatorWords(t *testing.T) {
	_, err := Source("ietf-netconf-acm", "")
	if err == nil || !strings.Contains(err.Error(), "module ietf-netconf-acm is not served (the modules served are pki-authority") ||
		strings.Contains(err.Error(), "file does not exist") || !errors.Is(err, ErrNotServed) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}
