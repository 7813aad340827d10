package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--state-dir", "/tmp/x", "--tpm", "sim"})
	if err != nil {
		t.Fatal(err)
	}
	if o.usersFile != "/tmp/x/users.json" || o.gnmiAddr != ":9339" || o.netconfAddr != ":830" || o.tpm != "sim" {
		t.Fatalf("%+v", o)
	}
	if _, err := parseFlags([]string{"--tls-cert", "a.pem"}); err == nil {
		t.Fatal("--tls-cert without --tls-key accepted")
	}
	if _, err := parseFlags([]string{"--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

// TestBinaryStartsAndStopsOnSIGTERM builds the agent, starts it on loopback
// and checks it shuts down cleanly on SIGTERM.
func TestBinaryStartsAndStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pki-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--state-dir", filepath.Join(dir, "state"), "--gnmi-addr", "127.0.0.1:0", "--netconf-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "PKI_AGENT_ADMIN_PASSWORD=test-password")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	started := make(chan struct{})
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "pki-agent started") {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("agent did not start:\n%s", strings.Join(lines, "\n"))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	<-done
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, strings.Join(lines, "\n"))
	}
	if !strings.Contains(strings.Join(lines, "\n"), "pki-agent stopped") {
		t.Fatalf("no clean stop:\n%s", strings.Join(lines, "\n"))
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
