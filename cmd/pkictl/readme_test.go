package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readmeBlocks returns the fenced blocks of README.md whose info string is
// "sh " + tag.
func readmeBlocks(t *testing.T, readme, tag string) []string {
	t.Helper()
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(strings.NewReader(readme))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(l) == "```sh "+tag:
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(l) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(l + "\n")
		}
	}
	return blocks
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestREADMEWalkThrough runs the README's pkictl walk-through as written:
// the readme-test-agent block (make run, given a state directory and free
// loopback ports in place of the defaults), then every readme-test block
// in one bash, in a fresh directory whose bin/ is the repository's. It
// checks the certificate is imported, the revocation arrives as a critical
// alarm within a second of crl refresh, and Ctrl-C ends make run cleanly.
func TestREADMEWalkThrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds with make")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	agentBlocks := readmeBlocks(t, string(readme), "readme-test-agent")
	blocks := readmeBlocks(t, string(readme), "readme-test")
	if len(agentBlocks) != 1 || strings.TrimSpace(agentBlocks[0]) != "make run" || len(blocks) < 3 {
		t.Fatalf("README: want one readme-test-agent block 'make run' and the readme-test blocks; got %q and %d blocks", agentBlocks, len(blocks))
	}
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(repo, "bin"), filepath.Join(work, "bin")); err != nil {
		t.Fatal(err)
	}
	gnmiAddr, netconfAddr := freePort(t), freePort(t)

	// make run, as the README says, with the test's state dir and ports.
	makeRun := exec.Command("make", "-C", repo, "run", "STATE_DIR="+filepath.Join(work, "var"), "GNMI_ADDR="+gnmiAddr, "NETCONF_ADDR="+netconfAddr)
	makeRun.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	makeRun.Env = os.Environ()
	var makeOut lockedBuffer
	makeRun.Stdout, makeRun.Stderr = &makeOut, &makeOut
	if err := makeRun.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- makeRun.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			syscall.Kill(-makeRun.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	for deadline := time.Now().Add(5 * time.Minute); !strings.Contains(makeOut.String(), "pki-agent started"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("make run did not start the agent:\n%s", makeOut.String())
		}
	}

	// The readme-test blocks in one bash; a DEBUG trap logs when each
	// command starts.
	script := "set -euo pipefail\ntrap 'printf \"%s %s\\n\" \"$(date +%s.%N)\" \"$BASH_COMMAND\" >> .commands' DEBUG\n" + strings.Join(blocks, "\n")
	sh := exec.Command("bash", "-c", script)
	sh.Dir = work
	sh.Env = append(os.Environ(), "PKICTL_ADDRESS="+gnmiAddr, "PKICTL_NETCONF="+netconfAddr)
	start := time.Now()
	out, err := sh.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("README walk-through: %v\n%s\nagent:\n%s", err, out, makeOut.String())
	}
	want(t, "README walk-through", string(out), "certificate router imported: valid", "Subject Alt Names", "DNS:r1.example.net, IP:192.0.2.1",
		"TLS Web Server Authentication, TLS Web Client Authentication", "trusted CA lab-ca", "certificate-revoked", "CRL Entry")

	// What ran, and how fast the alarm came.
	log, err := os.ReadFile(filepath.Join(work, ".commands"))
	if err != nil {
		t.Fatal(err)
	}
	var commands, pkictls int
	var refreshAt time.Time
	for _, l := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		ts, cmd, _ := strings.Cut(l, " ")
		commands++
		if strings.HasPrefix(cmd, "pkictl ") {
			pkictls++
		}
		if strings.HasPrefix(cmd, "pkictl crl refresh") {
			refreshAt = unixTime(t, ts)
		}
	}
	alarms, err := os.ReadFile(filepath.Join(work, "alarms.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var alarmAt time.Time
	for _, l := range strings.Split(string(alarms), "\n") {
		if strings.Contains(l, "critical") && strings.Contains(l, "certificate-revoked") {
			alarmAt, err = time.Parse("2006-01-02T15:04:05.000Z", strings.Fields(l)[0])
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if alarmAt.IsZero() || refreshAt.IsZero() {
		t.Fatalf("no critical certificate-revoked alarm after crl refresh:\n%s", alarms)
	}
	if d := alarmAt.Sub(refreshAt); d > time.Second {
		t.Fatalf("the revocation alarm came %v after crl refresh started; want within a second", d)
	}
	t.Logf("README walk-through: %d commands (%d pkictl), %v wall; revocation alarm %v after crl refresh started",
		commands, pkictls, wall.Round(time.Millisecond), alarmAt.Sub(refreshAt).Round(time.Millisecond))

	// Ctrl-C: the whole make run process group gets SIGINT, as from a
	// terminal; the agent stops cleanly and make reports no error.
	syscall.Kill(-makeRun.Process.Pid, syscall.SIGINT)
	select {
	case <-exited:
		stopped = true
	case <-time.After(30 * time.Second):
		t.Fatalf("make run did not stop on SIGINT:\n%s", makeOut.String())
	}
	if o := makeOut.String(); !strings.Contains(o, "pki-agent stopped") || strings.Contains(o, "Error") {
		t.Fatalf("make run after Ctrl-C:\n%s", o)
	}
}

func unixTime(t *testing.T, s string) time.Time {
	t.Helper()
	sec, frac, _ := strings.Cut(s, ".")
	var secs, nanos int64
	if _, err := fmt.Sscan(sec, &secs); err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	frac = (frac + "000000000")[:9]
	fmt.Sscan(frac, &nanos)
	return time.Unix(secs, nanos)
}
