package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

const adminPassword = "benchreport-admin"

// agent is the real pki-agent binary, run on loopback with a state
// directory of the benchmark's own.
type agent struct {
	bin, state string
	gnmiAddr   string
	cmd        *exec.Cmd
	cc         *grpc.ClientConn
	g          gpb.GNMIClient
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start runs the binary and returns once a gNMI Get answers, with the
// time that took. With idle > 0 it first waits for the gNMI port to
// accept and then idle more, and reports the RSS then, before any login
// (a login's argon2id check takes 19 MiB of its own).
func (a *agent) start(idle time.Duration) (time.Duration, float64, error) {
	var err error
	if a.gnmiAddr == "" {
		if a.gnmiAddr, err = freePort(); err != nil {
			return 0, 0, err
		}
	}
	ncAddr, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	begin := time.Now()
	a.cmd = exec.Command(a.bin, "--state-dir", a.state, "--gnmi-addr", a.gnmiAddr, "--netconf-addr", ncAddr, "--log-level", "error")
	a.cmd.Env = append(os.Environ(), "PKI_AGENT_ADMIN_PASSWORD="+adminPassword)
	log, err := os.Create(filepath.Join(filepath.Dir(a.state), "agent.log"))
	if err != nil {
		return 0, 0, err
	}
	a.cmd.Stdout, a.cmd.Stderr = log, log
	if err := a.cmd.Start(); err != nil {
		return 0, 0, err
	}
	deadline := begin.Add(60 * time.Second)
	var idleRSS float64
	if idle > 0 {
		for time.Now().Before(deadline) {
			if c, err := net.Dial("tcp", a.gnmiAddr); err == nil {
				c.Close()
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(idle)
		idleRSS, _ = a.rss()
	}
	for time.Now().Before(deadline) {
		if a.g == nil {
			a.dial()
		}
		if a.g != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := a.g.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{mustPath("/authority/router[name=none]")}, Encoding: gpb.Encoding_JSON_IETF, Type: gpb.GetRequest_CONFIG})
			cancel()
			if err == nil || strings.Contains(err.Error(), "NotFound") || strings.Contains(err.Error(), "not found") {
				return time.Since(begin), idleRSS, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.stop()
	return 0, 0, fmt.Errorf("the agent did not answer gNMI within 60 s (see %s)", log.Name())
}

func (a *agent) dial() {
	caPEM, err := os.ReadFile(filepath.Join(a.state, "tls", "ca.pem"))
	if err != nil {
		return
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cc, err := grpc.NewClient(a.gnmiAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})),
		grpc.WithPerRPCCredentials(passwordCreds{}), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return
	}
	a.cc, a.g = cc, gpb.NewGNMIClient(cc)
}

func (a *agent) stop() {
	if a.cc != nil {
		a.cc.Close()
		a.cc, a.g = nil, nil
	}
	if a.cmd != nil && a.cmd.Process != nil {
		a.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			a.cmd.Process.Kill()
			<-done
		}
		a.cmd = nil
	}
}

// rss returns VmRSS and VmHWM of the agent, in MiB.
func (a *agent) rss() (rss, hwm float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "VmRSS:":
				rss = kb / 1024
			case "VmHWM:":
				hwm = kb / 1024
			}
		}
	}
	return rss, hwm
}

type passwordCreds struct{}

func (passwordCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"username": "admin", "password": adminPassword}, nil
}
func (passwordCreds) RequireTransportSecurity() bool { return true }

func mustPath(s string) *gpb.Path {
	p, err := ygot.StringToStructuredPath(s)
	if err != nil {
		panic(err)
	}
	return p
}

func jsonVal(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
}

func (a *agent) set(updates []*gpb.Update, deletes ...*gpb.Path) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	_, err := a.g.Set(ctx, &gpb.SetRequest{Update: updates, Delete: deletes})
	return time.Since(start), err
}

// addRouters grows the router list to n entries (r0..r(n-1)), in Sets of
// at most 1,000.
func (a *agent) addRouters(from, to int) error {
	for lo := from; lo < to; lo += 1000 {
		var ups []*gpb.Update
		for i := lo; i < min(lo+1000, to); i++ {
			ups = append(ups, &gpb.Update{Path: mustPath(fmt.Sprintf("/authority/router[name=r%d]", i)), Val: jsonVal(fmt.Sprintf(`{"name":"r%d","peer-validation":true}`, i))})
		}
		if _, err := a.set(ups); err != nil {
			return fmt.Errorf("adding routers %d..%d: %w", lo, min(lo+1000, to)-1, err)
		}
	}
	return nil
}

// setLeafLatencies times n Sets of one leaf (a router's peer-validation,
// toggled so that each Set changes it).
func (a *agent) setLeafLatencies(n int) ([]time.Duration, error) {
	path := mustPath("/authority/router[name=bench]/peer-validation")
	if _, err := a.set([]*gpb.Update{{Path: mustPath("/authority/router[name=bench]"), Val: jsonVal(`{"name":"bench"}`)}}); err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, n)
	for i := range n {
		d, err := a.set([]*gpb.Update{{Path: path, Val: &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: i%2 == 0}}}})
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (a *agent) getTree() (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := a.g.Get(ctx, &gpb.GetRequest{Encoding: gpb.Encoding_JSON_IETF, Type: gpb.GetRequest_ALL})
	d := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	size := 0
	for _, n := range r.GetNotification() {
		for _, u := range n.GetUpdate() {
			size += len(u.GetVal().GetJsonIetfVal())
		}
	}
	return d, size, nil
}

// refreshCRL configures the CRL source url (and the CA trusted for it)
// and returns how long until the agent's state shows want entries, with
// the agent's RSS growth over that time.
func (a *agent) refreshCRL(caPEM, url string, want int) (time.Duration, float64, float64, error) {
	before, hwmBefore := a.rss()
	entries := regexp.MustCompile(`"(pki-authority:)?entries":\s*"?` + strconv.Itoa(want) + `"?[,}\s]`)
	statePath := mustPath(fmt.Sprintf("/authority/certificate-revocation-list[url=%s]/state", url))
	start := time.Now()
	if _, err := a.set([]*gpb.Update{
		{Path: mustPath("/authority/trusted-ca-certificate[name=bench]"), Val: jsonVal(fmt.Sprintf(`{"name":"bench","content":%q}`, caPEM))},
		{Path: mustPath(fmt.Sprintf("/authority/certificate-revocation-list[url=%s]", url)), Val: jsonVal(fmt.Sprintf(`{"url":%q}`, url))},
	}); err != nil {
		return 0, 0, 0, err
	}
	deadline := start.Add(2 * time.Minute)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := a.g.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{statePath}, Encoding: gpb.Encoding_JSON_IETF, Type: gpb.GetRequest_STATE})
		cancel()
		if err == nil {
			for _, n := range r.GetNotification() {
				for _, u := range n.GetUpdate() {
					last = string(u.GetVal().GetJsonIetfVal())
					if entries.Match(u.GetVal().GetJsonIetfVal()) {
						d := time.Since(start)
						after, hwm := a.rss()
						return d, after - before, hwm - hwmBefore, nil
					}
				}
			}
		} else {
			last = err.Error()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, 0, 0, fmt.Errorf("the state of %s did not show %d entries within 2 minutes; last: %s", url, want, last)
}

func (a *agent) removeCRL(url string) error {
	_, err := a.set(nil, mustPath(fmt.Sprintf("/authority/certificate-revocation-list[url=%s]", url)))
	return err
}
