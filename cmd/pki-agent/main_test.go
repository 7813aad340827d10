package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--state-dir", "/tmp/x", "--tpm", "sim"})
	if err != nil {
		t.Fatal(err)
	}
	if o.usersFile != "/tmp/x/users.json" || o.gnmiAddr != "127.0.0.1:9339" || o.netconfAddr != "127.0.0.1:830" || o.tpm != "sim" {
		t.Fatalf("%+v", o)
	}
	if _, err := parseFlags([]string{"--tls-cert", "a.pem"}); err == nil {
		t.Fatal("--tls-cert without --tls-key accepted")
	}
	if _, err := parseFlags([]string{"--tls-cert-name", "a/b"}); err == nil || !strings.Contains(err.Error(), "--tls-cert-name") {
		t.Fatalf("--tls-cert-name a/b: %v", err)
	}
	if _, err := parseFlags([]string{"--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

// agentProcess is the real pki-agent binary, started by runAgentBinary.
type agentProcess struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

// log returns what the agent logged so far.
func (p *agentProcess) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// logged waits up to 10 s for a log line containing substr and returns it.
func (p *agentProcess) logged(t testing.TB, substr string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l, substr) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("agent never logged %q:\n%s", substr, p.log())
	return ""
}

// logAttr returns the value of key=value in a slog text line.
func logAttr(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// stop sends SIGTERM and returns the exit error.
func (p *agentProcess) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	err := p.cmd.Wait()
	<-p.done
	return err
}

// kill sends SIGKILL (kill -9: no shutdown code runs) and returns the exit
// error, which reports the signal.
func (p *agentProcess) kill() error {
	p.cmd.Process.Signal(syscall.SIGKILL)
	err := p.cmd.Wait()
	<-p.done
	return err
}

// binDir holds the binary buildOnce builds; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pki-agent-bin")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "pki-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build: %v\n%s", err, out)
	}
	return bin, nil
})

// runAgentBinary builds the agent once per test run, starts it with args
// (plus loopback addresses unless given) and waits until it has started.
// The process is stopped at the end of the test.
func runAgentBinary(t testing.TB, stateDir string, args ...string) *agentProcess {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--state-dir", stateDir, "--gnmi-addr", "127.0.0.1:0", "--netconf-addr", "127.0.0.1:0"}, args...)
	p := &agentProcess{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "PKI_AGENT_ADMIN_PASSWORD="+adminPassword)
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
			<-p.done
		}
	})
	p.logged(t, "pki-agent started")
	return p
}

// TestBinaryStartsAndStopsOnSIGTERM builds the agent, starts it on loopback
// and checks it shuts down cleanly on SIGTERM.
func TestBinaryStartsAndStopsOnSIGTERM(t *testing.T) {
	p := runAgentBinary(t, filepath.Join(t.TempDir(), "state"))
	if err := p.stop(); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.log())
	}
	if !strings.Contains(p.log(), "pki-agent stopped") {
		t.Fatalf("no clean stop:\n%s", p.log())
	}
}

// TestMetricsEndpoint scrapes /metrics of the running binary.
func TestMetricsEndpoint(t *testing.T) {
	p := runAgentBinary(t, filepath.Join(t.TempDir(), "state"), "--metrics-addr", "127.0.0.1:0")
	addr := logAttr(p.logged(t, "metrics listening"), "addr")
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `pkiagent_csr_total{result="success"} 0`) {
		t.Fatalf("%s\n%s", resp.Status, body)
	}
}

func TestCorruptStateIsAStartupErrorNamingTheFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "running.json"), []byte("{not json"), 0o600)
	err := run([]string{"--state-dir", dir, "--gnmi-addr", "127.0.0.1:0", "--netconf-addr", "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "running.json")) {
		t.Fatalf("err = %v", err)
	}
}

func TestUnreachableTPMIsAStartupError(t *testing.T) {
	dir := t.TempDir()
	err := run([]string{"--state-dir", dir, "--gnmi-addr", "127.0.0.1:0", "--netconf-addr", "127.0.0.1:0", "--tpm", "tcp://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "--tpm tcp://127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
}

// TestStartupFailureReleasesWhatItOpened: run fails on a busy NETCONF
// port after it has opened the state directory (locked), the audit log,
// the engine, the users and the gNMI listener; a second run in the same
// process gets just as far, so the first released them all.
func TestStartupFailureReleasesWhatItOpened(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gnmiAddr := free.Addr().String()
	free.Close()
	t.Setenv("PKI_AGENT_ADMIN_PASSWORD", adminPassword)
	for i := range 2 {
		err := run([]string{"--state-dir", dir, "--gnmi-addr", gnmiAddr, "--netconf-addr", busy.Addr().String()})
		if err == nil || !strings.Contains(err.Error(), "--netconf-addr "+busy.Addr().String()) {
			t.Fatalf("run %d: %v, want the busy --netconf-addr", i+1, err)
		}
	}
}

// TestUnconfirmedCommitRolledBackAtShutdown: a confirmed commit still
// pending when the agent stops is rolled back before it exits (RFC 6241
// 8.4.1), so the restarted agent does not keep the unconfirmed change in
// running for good.
func TestUnconfirmedCommitRolledBackAtShutdown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	const ns = `xmlns="urn:pkiagent:yang:pki-authority"`
	edit := func(c *ncClient, router string) {
		t.Helper()
		if r := c.rpc(`<edit-config><target><candidate/></target><config><authority ` + ns + `><router><name>` + router + `</name></router></authority></config></edit-config>`); !strings.Contains(r, "<ok/>") {
			t.Fatalf("edit-config: %s", r)
		}
	}
	p := runAgentBinary(t, dir)
	c := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	edit(c, "kept")
	if r := c.rpc(`<commit/>`); !strings.Contains(r, "<ok/>") {
		t.Fatalf("commit: %s", r)
	}
	edit(c, "unconfirmed")
	if r := c.rpc(`<commit><confirmed/><confirm-timeout>600</confirm-timeout><persist>p1</persist></commit>`); !strings.Contains(r, "<ok/>") {
		t.Fatalf("confirmed commit: %s", r)
	}
	if r := c.rpc(`<get-config><source><running/></source></get-config>`); !strings.Contains(r, "unconfirmed") {
		t.Fatalf("running before the restart: %s", r)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.log())
	}
	if !strings.Contains(p.log(), "rolled back a confirmed commit") {
		t.Fatalf("no rollback logged:\n%s", p.log())
	}

	p = runAgentBinary(t, dir)
	c = dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	r := c.rpc(`<get-config><source><running/></source></get-config>`)
	if strings.Contains(r, "unconfirmed") || !strings.Contains(r, "kept") {
		t.Fatalf("running after the restart keeps the unconfirmed commit or lost the confirmed one: %s", r)
	}
	if r := c.rpc(`<commit><persist-id>p1</persist-id></commit>`); !strings.Contains(r, "rpc-error") {
		t.Fatalf("confirming the rolled-back commit after the restart: %s", r)
	}
}

// TestHelpAndVersion: --help exits 0 and names the environment variables;
// --version exits 0 with a version.
func TestHelpAndVersion(t *testing.T) {
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PKI_AGENT_ADMIN_PASSWORD") || !strings.Contains(string(out), "-state-dir") {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "pki-agent ") || len(strings.TrimSpace(string(out))) <= len("pki-agent") {
		t.Fatalf("--version: %v\n%s", err, out)
	}
}
