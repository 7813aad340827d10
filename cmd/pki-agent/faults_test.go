package main

// The fault suite (issue 10): the real binary under kill -9, a full disk
// and a hundred clients. Each test has a short mode that runs inside the
// normal `go test ./...` in seconds and a long mode, `make faults`
// (PKI_AGENT_FAULTS=long), bounded in time and count. Every fault test
// reads the mode through faultDuration and faultCount, so one switch
// selects it for all of them.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nemith/netconf"
	ncssh "github.com/nemith/netconf/transport/ssh"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc"
)

// FaultsEnv selects the mode of the fault suite: "long" runs the long
// mode (make faults); anything else, or unset, the short one.
const FaultsEnv = "PKI_AGENT_FAULTS"

// FaultsSeedEnv fixes the seed of the random choices (kill moments,
// operations) to replay a run; every test logs the seed it used.
const FaultsSeedEnv = "PKI_AGENT_FAULTS_SEED"

// faultsLong reports whether the long mode of the fault suite is on.
func faultsLong() bool { return os.Getenv(FaultsEnv) == "long" }

// faultDuration returns short in the short mode, long in the long mode.
func faultDuration(short, long time.Duration) time.Duration {
	if faultsLong() {
		return long
	}
	return short
}

// faultCount returns short in the short mode, long in the long mode.
func faultCount(short, long int) int {
	if faultsLong() {
		return long
	}
	return short
}

// faultRand returns the test's random source, seeded from FaultsSeedEnv
// or the clock, and logs the seed so a failing run can be replayed.
func faultRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(FaultsSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", FaultsSeedEnv, s, err)
		}
		seed = v
	}
	mode := "short"
	if faultsLong() {
		mode = "long"
	}
	t.Logf("fault suite: %s mode, seed %d (replay with %s=%d)", mode, seed, FaultsSeedEnv, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// procStatus returns a kB field of /proc/PID/status in bytes: VmRSS, the
// resident set size, or VmHWM, its peak.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s in /proc/%d/status: %q", field, pid, l)
			}
			return n << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// rssBytes returns the resident set size of a process (VmRSS).
func rssBytes(pid int) (int64, error) { return procStatus(pid, "VmRSS") }

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ncSession is a NETCONF session (github.com/nemith/netconf, base:1.1) to
// the agent whose calls return errors instead of failing the test, so it
// can be used from worker goroutines and across a kill.
type ncSession struct{ *netconf.Session }

func dialNC(ctx context.Context, addr string) (*ncSession, error) {
	tr, err := ncssh.Dial(ctx, "tcp", addr, &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password(adminPassword)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	s, err := netconf.Open(tr)
	if err != nil {
		tr.Close()
		return nil, err
	}
	return &ncSession{s}, nil
}

// call sends op (the XML inside <rpc>) and returns the reply's body; an
// rpc-error is returned as a netconf.RPCError (or RPCErrors).
func (s *ncSession) call(ctx context.Context, op string) (string, error) {
	r, err := s.Do(ctx, op)
	if err != nil {
		return "", err
	}
	return string(r.Body), r.Err()
}

// close ends the session without waiting long for a dead agent.
func (s *ncSession) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.Close(ctx)
}

// ncErrTag returns the error-tag of an rpc-error, "" for another error.
func ncErrTag(err error) netconf.ErrTag {
	var e netconf.RPCError
	if errors.As(err, &e) {
		return e.Tag
	}
	return ""
}

// ncEditRouters is the edit-config of routers to the candidate, each with
// its peering-common-name.
func ncEditRouters(target string, cn map[string]string) string {
	var b strings.Builder
	b.WriteString(`<edit-config><target><` + target + `/></target><config><authority ` + pkaNS + `>`)
	for name, v := range cn {
		b.WriteString(`<router><name>` + name + `</name><peering-common-name>` + v + `</peering-common-name></router>`)
	}
	b.WriteString(`</authority></config></edit-config>`)
	return b.String()
}

// runningRouters returns the peering-common-name of every router in
// running, read over NETCONF (a router without one maps to "").
func runningRouters(ctx context.Context, s *ncSession) (map[string]string, error) {
	body, err := s.call(ctx, `<get-config><source><running/></source><filter type="subtree"><authority `+pkaNS+`><router/></authority></filter></get-config>`)
	if err != nil {
		return nil, fmt.Errorf("get-config running: %w", err)
	}
	var v struct {
		Routers []struct {
			Name string `xml:"name"`
			CN   string `xml:"peering-common-name"`
		} `xml:"data>authority>router"`
	}
	if err := xml.Unmarshal([]byte("<r>"+body+"</r>"), &v); err != nil {
		return nil, fmt.Errorf("get-config running reply: %w", err)
	}
	out := map[string]string{}
	for _, r := range v.Routers {
		out[r.Name] = r.CN
	}
	return out, nil
}

// certificates returns the names under /certificates (one per key), each
// with the SHA-256 fingerprint of its certificate ("" without one).
func certificates(ctx context.Context, s *ncSession) (map[string]string, error) {
	body, err := s.call(ctx, `<get><filter type="subtree"><certificates `+pkaNS+`/></filter></get>`)
	if err != nil {
		return nil, fmt.Errorf("get /certificates: %w", err)
	}
	var v struct {
		Certs []struct {
			Name        string `xml:"name"`
			Fingerprint string `xml:"fingerprint-sha256"`
		} `xml:"data>certificates>certificate"`
	}
	if err := xml.Unmarshal([]byte("<r>"+body+"</r>"), &v); err != nil {
		return nil, fmt.Errorf("get /certificates reply: %w", err)
	}
	out := map[string]string{}
	for _, c := range v.Certs {
		out[c.Name] = c.Fingerprint
	}
	return out, nil
}

// gnmiClientAt connects to the gNMI server at addr, trusting the CA the
// agent bootstrapped in STATE/tls/ca.pem; the connection is closed at cleanup.
func gnmiClientAt(t testing.TB, state, addr string) gpb.GNMIClient {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(state, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	// dialTLS reports each handshake's certificate; nobody here needs it.
	seen, done := make(chan *x509.Certificate), make(chan struct{})
	go func() {
		for {
			select {
			case <-seen:
			case <-done:
				return
			}
		}
	}()
	var cc *grpc.ClientConn
	t.Cleanup(func() { cc.Close(); close(done) })
	cc = dialTLS(t, addr, roots, seen)
	return gpb.NewGNMIClient(cc)
}

// setCN sets the peering-common-name of a router over gNMI.
func setCN(ctx context.Context, g gpb.GNMIClient, router, v string) error {
	_, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: routerElems(router, "peering-common-name"),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}}}}})
	return err
}

// kill9 is agentProcess.kill, waiting for the log reader too.
func kill9(t *testing.T, p *agentProcess) {
	t.Helper()
	if err := p.kill(); err != nil {
		var ee interface{ Sys() any }
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return
			}
		}
		t.Fatalf("kill -9: %v", err)
	}
}

// tailLog returns the last n lines of what the agent logged.
func tailLog(p *agentProcess, n int) string {
	l := bytes.Split([]byte(p.log()), []byte("\n"))
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return string(bytes.Join(l, []byte("\n")))
}
