package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const testPassword = "test-password-1"

// binDir holds the binaries buildBinaries builds; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinaries builds pki-agent and pkictl once per test run.
var buildBinaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pkictl-bin")
	if err != nil {
		return "", err
	}
	binDir = dir
	for _, pkg := range []string{"../pki-agent", "."} {
		name := filepath.Base(pkg)
		if pkg == "." {
			name = "pkictl"
		}
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
})

// agent is the real pki-agent binary on loopback ports of its own.
type agent struct {
	cmd         *exec.Cmd
	stateDir    string
	gnmiAddr    string
	netconfAddr string
	mu          sync.Mutex
	lines       []string
	done        chan struct{}
}

func (a *agent) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.lines, "\n")
}

// logged waits for a log line containing substr and returns the value of
// its attribute key.
func (a *agent) logged(t *testing.T, substr, key string) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		a.mu.Lock()
		for _, l := range a.lines {
			if strings.Contains(l, substr) {
				a.mu.Unlock()
				for _, f := range strings.Fields(l) {
					if v, ok := strings.CutPrefix(f, key+"="); ok {
						return strings.Trim(v, `"`)
					}
				}
				return ""
			}
		}
		a.mu.Unlock()
	}
	t.Fatalf("agent never logged %q:\n%s", substr, a.log())
	return ""
}

// watchLog collects the lines of r (the agent's stderr) into a.
func (a *agent) watchLog(r *bufio.Scanner) {
	defer close(a.done)
	for r.Scan() {
		a.mu.Lock()
		a.lines = append(a.lines, r.Text())
		a.mu.Unlock()
	}
}

// startAgent starts the agent binary in a fresh state directory; it is
// stopped at the end of the test.
func startAgent(t *testing.T) *agent {
	t.Helper()
	return startAgentIn(t, filepath.Join(t.TempDir(), "var"))
}

// restart stops a (SIGTERM) and starts the agent again on its state
// directory.
func (a *agent) restart(t *testing.T) *agent {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.cmd.Wait()
	<-a.done
	return startAgentIn(t, a.stateDir)
}

func startAgentIn(t *testing.T, stateDir string) *agent {
	t.Helper()
	dir, err := buildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{stateDir: stateDir, done: make(chan struct{})}
	a.cmd = exec.Command(filepath.Join(dir, "pki-agent"), "--state-dir", a.stateDir, "--gnmi-addr", "127.0.0.1:0", "--netconf-addr", "127.0.0.1:0")
	a.cmd.Env = append(os.Environ(), "PKI_AGENT_ADMIN_PASSWORD="+testPassword)
	stderr, _ := a.cmd.StderrPipe()
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go a.watchLog(bufio.NewScanner(stderr))
	t.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		a.cmd.Wait()
		<-a.done
	})
	a.netconfAddr = a.logged(t, "serving NETCONF", "addr")
	a.gnmiAddr = a.logged(t, "gNMI listening", "addr")
	a.logged(t, "pki-agent started", "commit")
	return a
}

// pkictlResult is what one pkictl run did.
type pkictlResult struct {
	code           int
	stdout, stderr string
}

// pkictl runs pkictl's run function against a, with env on top of the
// connection settings of a.
func (a *agent) pkictl(t *testing.T, stdin string, env map[string]string, args ...string) pkictlResult {
	t.Helper()
	vars := map[string]string{
		"PKICTL_STATE_DIR": a.stateDir, "PKICTL_ADDRESS": a.gnmiAddr, "PKICTL_NETCONF": a.netconfAddr,
		"PKICTL_PASSWORD": testPassword,
	}
	for k, v := range env {
		vars[k] = v
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb, func(k string) string { return vars[k] })
	return pkictlResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// ok runs pkictl and fails the test unless it exits 0; it returns stdout.
func (a *agent) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := a.pkictl(t, "", nil, args...)
	if r.code != 0 {
		t.Fatalf("pkictl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// sh runs a shell command in dir and fails the test if it fails.
func sh(t *testing.T, dir, script string) string {
	t.Helper()
	c := exec.Command("bash", "-euo", "pipefail", "-c", script)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// labCA makes a CA with openssl in dir (ca.pem, ca.key, ca.cnf, an empty
// ca.crl) and router.ext with the extensions import requires.
func labCA(t *testing.T, dir string) {
	t.Helper()
	sh(t, dir, `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 365 -subj "/CN=Lab Root CA" -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
printf '%s\n' '[ca]' 'default_ca = lab' '[lab]' 'database = index.txt' 'crlnumber = crlnumber' 'default_md = sha256' 'default_crl_days = 7' 'certificate = ca.pem' 'private_key = ca.key' > ca.cnf
touch index.txt && echo 01 > crlnumber && openssl ca -config ca.cnf -gencrl -out ca.crl 2>/dev/null
printf '%s\n' 'basicConstraints=CA:false' 'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth,clientAuth' 'subjectAltName=DNS:r1.example.net,IP:192.0.2.1' "crlDistributionPoints=URI:file://$PWD/ca.crl" > router.ext`)
}
