package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nemith/netconf"
	ncssh "github.com/nemith/netconf/transport/ssh"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// The agent's NETCONF host key file in its state directory (as
// northbound/netconf names it), pinned when --state-dir is given.
const hostKeyFile = "ssh_host_ed25519_key"

// dialTimeout bounds connecting to the agent; an unreachable address is one
// clear line, not a hang.
const dialTimeout = 10 * time.Second

// client holds the connections of one pkictl run, opened on first use.
type client struct {
	conn *connOptions
	cc   *grpc.ClientConn
	gnmi gpb.GNMIClient
	nc   *netconf.Session
}

// userError is an error meant for the operator as it is: one line, no
// wrapping by the caller.
type userError struct{ msg string }

func (e userError) Error() string { return e.msg }

func userErrorf(format string, a ...any) error { return userError{fmt.Sprintf(format, a...)} }

type passwordCreds struct{ user, password string }

func (c passwordCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"username": c.user, "password": c.password}, nil
}
func (passwordCreds) RequireTransportSecurity() bool { return true }

// gnmiClient connects to the gNMI server (TLS verified against --tls-ca).
func (c *client) gnmiClient() (gpb.GNMIClient, error) {
	if c.gnmi != nil {
		return c.gnmi, nil
	}
	if c.conn.tlsCA == "" {
		return nil, userErrorf("no CA to verify the agent's gNMI certificate: give --tls-ca FILE or --state-dir DIR (which holds DIR/tls/ca.pem)")
	}
	caPEM, err := os.ReadFile(c.conn.tlsCA)
	if err != nil {
		return nil, userErrorf("--tls-ca %s: %v", c.conn.tlsCA, errors.Unwrap(err))
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, userErrorf("--tls-ca %s: no PEM certificate in the file", c.conn.tlsCA)
	}
	host, _, err := net.SplitHostPort(c.conn.gnmiAddr)
	if err != nil {
		return nil, userErrorf("-a %s: want HOST:PORT", c.conn.gnmiAddr)
	}
	tc := &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}
	cc, err := grpc.NewClient(c.conn.gnmiAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithPerRPCCredentials(passwordCreds{c.conn.user, c.conn.password}))
	if err != nil {
		return nil, userErrorf("-a %s: %v", c.conn.gnmiAddr, err)
	}
	c.cc = cc
	c.gnmi = gpb.NewGNMIClient(cc)
	return c.gnmi, nil
}

// gnmiError turns a gRPC failure into one line an operator can act on.
func (c *client) gnmiError(err error) error {
	if err == nil {
		return nil
	}
	var ue userError
	if errors.As(err, &ue) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	addr := c.conn.gnmiAddr
	switch {
	case st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied:
		return userErrorf("gNMI %s: %s (user %s)", addr, msg, c.conn.user)
	case st.Code() == codes.DeadlineExceeded:
		return userErrorf("gNMI %s: no answer in time; is the agent running there?", addr)
	case st.Code() != codes.Unavailable:
		return userErrorf("%s", msg)
	case strings.Contains(msg, "x509") || strings.Contains(msg, "certificate"):
		return userErrorf("gNMI %s: the agent's TLS certificate is not trusted by --tls-ca %s (%s)", addr, c.conn.tlsCA, tlsReason(msg))
	case strings.Contains(msg, "connection refused"):
		return userErrorf("gNMI %s: connection refused; is the agent running there?", addr)
	case strings.Contains(msg, "no such host") || strings.Contains(msg, "lookup") || strings.Contains(msg, "zero addresses"):
		return userErrorf("gNMI %s: unknown host", addr)
	}
	return userErrorf("gNMI %s: unreachable (%s)", addr, lastClause(msg))
}

// tlsReason is the x509 verdict of a handshake failure, without gRPC's
// connection-error framing.
func tlsReason(msg string) string {
	if i := strings.Index(msg, "x509: "); i >= 0 {
		return strings.TrimSuffix(msg[i:], `"`)
	}
	return lastClause(msg)
}

func lastClause(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return strings.TrimSuffix(msg[i+2:], `"`)
	}
	return msg
}

// get reads path (state and config) and returns the JSON value there ({}
// when nothing is there).
func (c *client) get(ctx context.Context, path string) (map[string]any, error) {
	g, err := c.gnmiClient()
	if err != nil {
		return nil, err
	}
	p, err := parsePath(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	resp, err := g.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{p}, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return map[string]any{}, nil
		}
		return nil, c.gnmiError(err)
	}
	out := map[string]any{}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			b := u.GetVal().GetJsonIetfVal()
			if b == nil {
				b = u.GetVal().GetJsonVal()
			}
			if b == nil {
				continue
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, fmt.Errorf("the agent's answer for %s is not JSON: %w", path, err)
			}
			if m, ok := v.(map[string]any); ok {
				for k, x := range m {
					out[stripModule(k)] = x
				}
			}
		}
	}
	return out, nil
}

// getConfig reads the running configuration at path (config only), as
// the agent's RFC 7951 JSON.
func (c *client) getConfig(ctx context.Context, path string) (any, error) {
	g, err := c.gnmiClient()
	if err != nil {
		return nil, err
	}
	p, err := parsePath(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	resp, err := g.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{p}, Type: gpb.GetRequest_CONFIG, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		return nil, c.gnmiError(err)
	}
	var out []any
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			var v any
			if err := json.Unmarshal(u.GetVal().GetJsonIetfVal(), &v); err != nil {
				return nil, fmt.Errorf("the agent's answer for %s is not JSON: %w", path, err)
			}
			out = append(out, v)
		}
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return out, nil
}

// set sends one gNMI Set transaction.
func (c *client) set(ctx context.Context, req *gpb.SetRequest) error {
	g, err := c.gnmiClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = g.Set(ctx, req)
	return c.gnmiError(err)
}

// netconf opens the NETCONF session (SSH password login; the host key is
// checked against --state-dir's key or known_hosts).
func (c *client) netconf(ctx context.Context) (*netconf.Session, error) {
	if c.nc != nil {
		return c.nc, nil
	}
	addr := c.conn.netconfAddr
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, userErrorf("--netconf %s: want HOST:PORT", addr)
	}
	hk, err := c.hostKeyCallback()
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	tr, err := ncssh.Dial(dctx, "tcp", addr, &ssh.ClientConfig{
		User: c.conn.user, Auth: []ssh.AuthMethod{ssh.Password(c.conn.password)},
		HostKeyCallback: hk, Timeout: dialTimeout,
	})
	if err != nil {
		return nil, c.netconfDialError(err)
	}
	s, err := netconf.Open(tr)
	if err != nil {
		tr.Close()
		return nil, userErrorf("NETCONF %s: no NETCONF session (%v)", addr, err)
	}
	c.nc = s
	return s, nil
}

func (c *client) netconfDialError(err error) error {
	addr := c.conn.netconfAddr
	var ke *knownhosts.KeyError
	var hk hostKeyMismatch
	msg := err.Error()
	switch {
	case errors.As(err, &hk):
		return userErrorf("NETCONF %s: %s", addr, hk.Error())
	case errors.As(err, &ke):
		return userErrorf("NETCONF %s: the SSH host key is not the one in known_hosts", addr)
	case strings.Contains(msg, "unable to authenticate"):
		return userErrorf("NETCONF %s: login refused for user %s (wrong user or password)", addr, c.conn.user)
	case strings.Contains(msg, "connection refused"):
		return userErrorf("NETCONF %s: connection refused; is the agent running there?", addr)
	case strings.Contains(msg, "no such host"):
		return userErrorf("NETCONF %s: unknown host", addr)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "timeout"):
		return userErrorf("NETCONF %s: no answer in time; is the agent running there?", addr)
	}
	return userErrorf("NETCONF %s: %s", addr, lastClause(msg))
}

// hostKeyMismatch: the agent's host key is not the one pinned.
type hostKeyMismatch struct{ why string }

func (e hostKeyMismatch) Error() string { return e.why }

// hostKeyCallback pins the host key the agent keeps in --state-dir when
// that is given, else checks ~/.ssh/known_hosts (or --known-hosts).
func (c *client) hostKeyCallback() (ssh.HostKeyCallback, error) {
	if c.conn.stateDir != "" {
		b, err := os.ReadFile(filepath.Join(c.conn.stateDir, hostKeyFile))
		if err == nil {
			signer, err := ssh.ParsePrivateKey(b)
			if err != nil {
				return nil, userErrorf("--state-dir %s: the NETCONF host key file does not parse", c.conn.stateDir)
			}
			want := signer.PublicKey().Marshal()
			return func(_ string, _ net.Addr, key ssh.PublicKey) error {
				if string(key.Marshal()) != string(want) {
					return hostKeyMismatch{fmt.Sprintf("the SSH host key (%s) is not the one in --state-dir %s: another agent answers there", ssh.FingerprintSHA256(key), c.conn.stateDir)}
				}
				return nil
			}, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, userErrorf("--state-dir %s: %v", c.conn.stateDir, errors.Unwrap(err))
		}
	}
	file := c.conn.knownHosts
	if file == "" {
		home, _ := os.UserHomeDir()
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, userErrorf("cannot check the agent's SSH host key: no --state-dir with its key and no known_hosts file %s", file)
	}
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			return hostKeyMismatch{fmt.Sprintf("unknown SSH host key %s: add it to %s (ssh-keyscan -p PORT HOST) or use --state-dir", ssh.FingerprintSHA256(key), file)}
		}
		return err
	}, nil
}

// rpc runs one NETCONF operation (the XML inside <rpc>) and returns the
// reply's body; an rpc-error becomes one line.
func (c *client) rpc(ctx context.Context, op string) (string, error) {
	s, err := c.netconf(ctx)
	if err != nil {
		return "", err
	}
	r, err := s.Do(ctx, op)
	if err != nil {
		return "", userErrorf("NETCONF %s: %v", c.conn.netconfAddr, err)
	}
	if err := r.Err(); err != nil {
		return "", rpcErrorLine(err)
	}
	return string(r.Body), nil
}

// rpcErrorLine is the error-message of an rpc-error (with its path), the
// agent's words for the operator.
func rpcErrorLine(err error) error {
	var one netconf.RPCError
	var many netconf.RPCErrors
	switch {
	case errors.As(err, &one):
		return userError{rpcErrorText(one)}
	case errors.As(err, &many) && len(many) > 0:
		var parts []string
		for _, e := range many {
			parts = append(parts, rpcErrorText(e))
		}
		return userError{strings.Join(parts, "; ")}
	}
	return err
}

func rpcErrorText(e netconf.RPCError) string {
	msg := strings.TrimSpace(e.Message)
	if msg == "" {
		msg = string(e.Tag)
	}
	if p := strings.TrimSpace(e.Path); p != "" && !strings.Contains(msg, p) {
		msg += " (at " + p + ")"
	}
	return msg
}

// close ends the sessions without waiting long for a dead agent.
func (c *client) close() {
	if c.nc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c.nc.Close(ctx)
		cancel()
	}
	if c.cc != nil {
		c.cc.Close()
	}
}

func stripModule(k string) string {
	if i := strings.IndexByte(k, ':'); i >= 0 {
		return k[i+1:]
	}
	return k
}
