package tpm

import (
	"context"
	"crypto"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/pki/keystore"
	"github.com/pkiagent/pkiagent/pki/keystore/keystoretest"
)

// swtpm is a swtpm process serving the TPM state in dir on 127.0.0.1.
type swtpm struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
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

// startSwtpm starts swtpm over the state in dir and stops it when the test
// ends. It skips the test when swtpm is not installed.
func startSwtpm(t testing.TB, dir string) *swtpm {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm is not installed (apt-get install -y swtpm)")
	}
	var lastErr error
	for range 3 { // the free ports may be taken before swtpm binds them
		sw := &swtpm{dir: dir, port: freePortPair(t), done: make(chan struct{})}
		sw.cmd = exec.Command(bin, "socket", "--tpm2",
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", sw.port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", sw.port+1),
			"--tpmstate", "dir="+dir,
			"--flags", "not-need-init,startup-clear")
		if err := sw.cmd.Start(); err != nil {
			t.Fatalf("start swtpm: %v", err)
		}
		go func() { sw.cmd.Wait(); close(sw.done) }()
		t.Cleanup(sw.stop)
		if lastErr = sw.waitReady(5 * time.Second); lastErr == nil {
			return sw
		}
		sw.stop()
	}
	t.Fatalf("swtpm did not come up: %v", lastErr)
	return nil
}

func (sw *swtpm) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(sw.port)) }

func (sw *swtpm) spec() string { return "tcp://" + sw.addr() }

func (sw *swtpm) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		select {
		case <-sw.done:
			return fmt.Errorf("swtpm exited: %v", sw.cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", sw.addr(), 200*time.Millisecond)
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

// stop terminates swtpm and waits for it; it may be called more than once.
func (sw *swtpm) stop() {
	select {
	case <-sw.done:
		return
	default:
	}
	sw.cmd.Process.Kill()
	<-sw.done
}

func TestSwtpmContract(t *testing.T) {
	sw := startSwtpm(t, t.TempDir())
	tp := openTPM(t, sw.spec())
	keystoretest.Run(t, keystoretest.Harness{
		Kind:        "tpm",
		Open:        func(t *testing.T, dir string) keystore.Store { return newStore(t, tp, dir) },
		Specs:       []keystore.KeySpec{p256, p384, p521, r2k},
		Unsupported: []keystore.KeySpec{r4k, r2304},
	})
	if n := transientCount(t, tp); n != 0 {
		t.Errorf("%d transient objects left in swtpm", n)
	}
}

// A key made in swtpm loads and signs again after swtpm itself and the
// store are restarted over the same TPM state.
func TestSwtpmRestart(t *testing.T) {
	state, keys := t.TempDir(), t.TempDir()
	sw := startSwtpm(t, state)
	tp, err := Open(sw.spec())
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, tp, keys)
	want := map[string]crypto.PublicKey{}
	for name, spec := range map[string]keystore.KeySpec{"ec": p256, "rsa": r2k} {
		sg, err := s.Generate(context.Background(), name, spec)
		if err != nil {
			t.Fatalf("Generate(%s): %v", spec, err)
		}
		want[name] = sg.Public()
	}
	tp.Close()
	sw.stop()

	sw = startSwtpm(t, state)
	tp = openTPM(t, sw.spec())
	s = newStore(t, tp, keys)
	for name, pub := range want {
		sg, err := s.Signer(context.Background(), name)
		if err != nil {
			t.Fatalf("Signer(%s) after restart: %v", name, err)
		}
		if !sg.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Errorf("%s: public key changed across the restart", name)
		}
		keystoretest.CheckSigner(t, sg)
		keystoretest.CheckCSR(t, sg)
	}
}

// RSA 3072 is a size swtpm implements and the simulator does not.
func TestSwtpmRSA3072(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA 3072 generation in swtpm takes seconds")
	}
	sw := startSwtpm(t, t.TempDir())
	tp := openTPM(t, sw.spec())
	s := newStore(t, tp, t.TempDir())
	start := time.Now()
	sg, err := s.Generate(context.Background(), "big", r3k)
	if err != nil {
		t.Fatalf("Generate(rsa-3072): %v", err)
	}
	t.Logf("rsa-3072 in swtpm: %v", time.Since(start))
	keystoretest.CheckSigner(t, sg)
}

func BenchmarkSwtpmGenerate(b *testing.B) {
	sw := startSwtpm(b, b.TempDir())
	tp := openTPM(b, sw.spec())
	for _, spec := range []keystore.KeySpec{p256, r2k} {
		b.Run(spec.String(), func(b *testing.B) {
			s := newStore(b, tp, b.TempDir())
			i := 0
			for b.Loop() {
				if _, err := s.Generate(context.Background(), fmt.Sprintf("k%d", i), spec); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkSwtpmSign(b *testing.B) {
	sw := startSwtpm(b, b.TempDir())
	tp := openTPM(b, sw.spec())
	for _, spec := range []keystore.KeySpec{p256, r2k} {
		b.Run(spec.String(), func(b *testing.B) {
			s := newStore(b, tp, b.TempDir())
			sg, err := s.Generate(context.Background(), "k", spec)
			if err != nil {
				b.Fatal(err)
			}
			d := make([]byte, 32)
			for b.Loop() {
				if _, err := sg.Sign(nil, d, crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// When swtpm goes away, operations fail at once with an error; nothing hangs
// and no software key stands in.
func TestSwtpmDies(t *testing.T) {
	sw := startSwtpm(t, t.TempDir())
	tp := openTPM(t, sw.spec())
	s := newStore(t, tp, t.TempDir())
	sg, err := s.Generate(context.Background(), "k", p256)
	if err != nil {
		t.Fatal(err)
	}
	sw.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Signer(ctx, "k"); err == nil {
		t.Fatal("Signer succeeded with swtpm gone")
	}
	if _, err := sg.Sign(nil, make([]byte, 32), crypto.SHA256); err == nil {
		t.Fatal("Sign succeeded with swtpm gone")
	} else {
		t.Log(err)
	}
	if _, err := s.Generate(ctx, "k2", p256); err == nil {
		t.Fatal("Generate succeeded with swtpm gone")
	}
	if names, _ := s.Names(); len(names) != 1 {
		t.Errorf("Names() = %v, want only the key made before", names)
	}
}
