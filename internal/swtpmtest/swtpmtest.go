// Package swtpmtest starts Debian's swtpm (a software TPM 2.0) on 127.0.0.1
// for tests, over a TPM state directory that outlives the process, so a
// test can stop and restart the "chip" under a running store or agent.
package swtpmtest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Swtpm is a swtpm process serving the TPM state in Dir on 127.0.0.1.
type Swtpm struct {
	Dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts swtpm over the state in dir and stops it when the test ends.
// It skips the test when swtpm is not installed.
func Start(t testing.TB, dir string) *Swtpm {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm is not installed (apt-get install -y swtpm)")
	}
	var lastErr error
	for range 3 { // the free ports may be taken before swtpm binds them
		sw := &Swtpm{Dir: dir, port: freePortPair(t), done: make(chan struct{})}
		sw.cmd = exec.Command(bin, "socket", "--tpm2",
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", sw.port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", sw.port+1),
			"--tpmstate", "dir="+dir,
			"--flags", "not-need-init,startup-clear")
		if err := sw.cmd.Start(); err != nil {
			t.Fatalf("start swtpm: %v", err)
		}
		go func() { sw.cmd.Wait(); close(sw.done) }()
		t.Cleanup(sw.Stop)
		if lastErr = sw.waitReady(5 * time.Second); lastErr == nil {
			return sw
		}
		sw.Stop()
	}
	t.Fatalf("swtpm did not come up: %v", lastErr)
	return nil
}

// Addr is the TPM command port, host:port.
func (sw *Swtpm) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(sw.port)) }

// Spec is the agent's --tpm value for this swtpm.
func (sw *Swtpm) Spec() string { return "tcp://" + sw.Addr() }

// Stop terminates swtpm and waits for it; it may be called more than once.
func (sw *Swtpm) Stop() {
	select {
	case <-sw.done:
		return
	default:
	}
	sw.cmd.Process.Kill()
	<-sw.done
}

func (sw *Swtpm) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		select {
		case <-sw.done:
			return fmt.Errorf("swtpm exited: %v", sw.cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", sw.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePortPair finds P such that P and P+1 are free on 127.0.0.1.
func freePortPair(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no pair of free ports on 127.0.0.1")
	return 0
}
