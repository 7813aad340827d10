// Package netnstest runs tests that need a peer binding all interfaces
// (openssl cmp, openssl ocsp) inside a private network namespace of their
// own, where only loopback exists, and starts the openssl cmp mock server
// there.
package netnstest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// netnsEnv marks the test binary re-run inside its own network namespace.
const netnsEnv = "PKIAGENT_NETNS"

// InNetns reports whether the caller runs inside a private network
// namespace, where a peer that binds all interfaces (openssl cmp) sees only
// loopback. Outside, it re-runs this test binary there with args (as root,
// unshare -n, lo up), reports its output, fails tb when it fails, and
// returns false.
func InNetns(tb testing.TB, args ...string) bool {
	tb.Helper()
	if os.Getenv(netnsEnv) == "1" {
		return true
	}
	if os.Geteuid() != 0 {
		tb.Skip("skipped: openssl cmp binds all interfaces, so it runs in a private network namespace (unshare -n), which needs root")
	}
	for _, tool := range []string{"unshare", "ip", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("skipped: %s not found (scripts/install-deps.sh)", tool)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	if f := flag.Lookup("test.v"); f != nil && f.Value.String() == "true" {
		args = append(args, "-test.v")
	}
	cmd := exec.Command("unshare", append([]string{"-n", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, exe}, args...)...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	tb.Logf("inside a private network namespace:\n%s", out)
	if err != nil {
		tb.Fatalf("the run in the network namespace failed: %v", err)
	}
	if strings.Contains(string(out), "no tests to run") {
		tb.Fatal("the run in the network namespace found no tests")
	}
	return false
}

// mockPort hands each mock server its own port, so one never meets the
// previous one's sockets.
var mockPort = 18080

// MockFiles are the files of an openssl cmp mock: the CA certificate
// trusted by both sides, the server's signing certificate and key, and
// Dir, where the mock's logs go.
type MockFiles struct{ Dir, CA, SrvCert, SrvKey string }

// StartCMPMock starts `openssl cmp` as a mock CMP server returning
// rspCert (reference 3078, secret "insta"), and returns its URL. It is
// stopped when tb ends. Call it inside the namespace (InNetns).
func StartCMPMock(tb testing.TB, f MockFiles, rspCert string, extra ...string) string {
	tb.Helper()
	mockPort++
	port := fmt.Sprint(mockPort)
	args := append([]string{"cmp", "-config", "", "-port", port,
		"-srv_ref", "3078", "-srv_secret", "pass:insta",
		"-srv_cert", f.SrvCert, "-srv_key", f.SrvKey, "-srv_trusted", f.CA,
		"-rsp_cert", rspCert, "-rsp_capubs", f.CA}, extra...)
	cmd := exec.Command("openssl", args...)
	logf, err := os.Create(filepath.Join(f.Dir, "mock-"+port+".log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if tb.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				tb.Logf("openssl cmp mock log:\n%s", b)
			}
		}
	})
	// Wait for its ACCEPT line: a probe connection would hold the
	// single-threaded mock until it timed out.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(logf.Name()); strings.Contains(string(b), "ACCEPT") {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("openssl cmp mock did not listen on %s", port)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "http://127.0.0.1:" + port + "/pkix/"
}
