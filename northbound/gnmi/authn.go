package gnmi

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"unicode"

	"github.com/pkiagent/pkiagent/agent/api"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/northbound/auth"
)

// Caller is the authenticated user of an RPC.
type Caller struct {
	User string
	Role string
	// Peer is the client's address.
	Peer string
	// Via is "password" or "certificate".
	Via string
}

type callerKey struct{}

// CallerFrom returns the caller the authentication interceptors put in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Agent returns the caller as the datastore and PKI rpcs see it.
func (c Caller) Agent() api.Caller { return api.Caller{User: c.User, Role: c.Role} }

// gNMI methods and the check each needs. Methods of other services on the
// same grpc.Server are authenticated here and authorised by their service.
var methodNeeds = map[string]func(role string) bool{
	"/gnmi.gNMI/Capabilities": api.CanRead,
	"/gnmi.gNMI/Get":          api.CanRead,
	"/gnmi.gNMI/Subscribe":    api.CanRead,
	"/gnmi.gNMI/Set":          api.CanWrite,
}

// authenticate finds the caller: username/password metadata, else a
// verified client certificate whose common name is a user. The caller is
// returned with a PermissionDenied error too, for the audit record.
func (s *Server) authenticate(ctx context.Context, method string) (context.Context, Caller, error) {
	c := Caller{}
	p, _ := peer.FromContext(ctx)
	if p != nil && p.Addr != nil {
		c.Peer = p.Addr.String()
	}
	md, _ := metadata.FromIncomingContext(ctx)
	user, pw := first(md, "username"), first(md, "password")
	switch {
	case user != "" || pw != "":
		role, err := s.auth.Login(ctx, auth.Attempt{User: user, Password: pw, Source: c.Peer, Protocol: "gnmi"})
		switch {
		case errors.Is(err, auth.ErrTooManyAttempts):
			return nil, c, status.Error(codes.ResourceExhausted, err.Error())
		case ctx.Err() != nil:
			return nil, c, status.FromContextError(ctx.Err()).Err()
		case err != nil:
			return nil, c, status.Error(codes.Unauthenticated, "invalid user name or password")
		}
		c.User, c.Role, c.Via = user, role, "password"
	default:
		cn, ok := verifiedCN(p)
		if !ok {
			return nil, c, status.Error(codes.Unauthenticated, "authentication required: send username and password metadata, or a client certificate signed by the --client-ca")
		}
		role, ok := s.auth.RoleFor(cn)
		if !ok {
			s.refusedCertificate(cn, c.Peer)
			return nil, c, status.Errorf(codes.Unauthenticated, "client certificate CN %q is not a user", cn)
		}
		c.User, c.Role, c.Via = cn, role, "certificate"
	}
	if need, ok := methodNeeds[method]; ok && !need(c.Role) {
		what := "read"
		if method == "/gnmi.gNMI/Set" {
			what = "change the configuration"
		}
		return nil, c, status.Errorf(codes.PermissionDenied, "user %s (role %s) may not %s", c.User, c.Role, what)
	}
	return context.WithValue(ctx, callerKey{}, c), c, nil
}

// audited records err when it refuses the operation for the caller's role
// (PermissionDenied, from authenticate or from the service), coalesced per
// user and operation so that a client retrying in a loop writes a few
// lines.
func (s *Server) audited(c Caller, method string, err error) error {
	if s.audit == nil || status.Code(err) != codes.PermissionDenied {
		return err
	}
	op := method[strings.LastIndexByte(method, '/')+1:]
	ev := audit.Event{
		Time: s.clock.Now().UTC(), User: c.User, Type: "system." + snake(op),
		Description: "gNMI " + op + " refused: " + status.Convert(err).Message(),
		Detail:      map[string]any{"protocol": "gnmi", "operation": method, "source": hostOf(c.Peer), "role": c.Role},
	}
	if s.audit.Coalesce("denied "+c.User+" "+method, ev) {
		s.log.Warn("operation refused for the caller's role", "user", c.User, "role", c.Role, "method", method, "peer", c.Peer)
	}
	return err
}

// refusedCertificate audits (coalesced per source address, as refused
// passwords are) and logs a verified client certificate whose common name
// is no user.
func (s *Server) refusedCertificate(cn, peer string) {
	src := hostOf(peer)
	ev := audit.Event{
		Time: s.clock.Now().UTC(), User: cn, Type: "system.login",
		Description: "gnmi login with a client certificate from " + src + " refused: its common name is not a user",
		Detail:      map[string]any{"protocol": "gnmi", "source": src, "method": "certificate", "reason": "certificate common name is not a user"},
	}
	if s.audit == nil || s.audit.Coalesce("login "+src, ev) {
		s.log.Warn("gNMI client certificate names no user", "cn", cn, "peer", peer)
	}
}

// snake turns a gRPC method name (Set, AddProfile) into an audit type
// suffix (set, add_profile).
func snake(op string) string {
	var b strings.Builder
	for i, r := range op {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func first(md metadata.MD, k string) string {
	if v := md.Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}

// verifiedCN returns the common name of a client certificate that the TLS
// layer verified against the client CA.
func verifiedCN(p *peer.Peer) (string, bool) {
	if p == nil {
		return "", false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	var leaf *x509.Certificate = ti.State.VerifiedChains[0][0]
	cn := strings.TrimSpace(leaf.Subject.CommonName)
	return cn, cn != ""
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, c, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, s.audited(c, info.FullMethod, err)
	}
	resp, err := h(ctx, req)
	return resp, s.audited(c, info.FullMethod, err)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, c, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return s.audited(c, info.FullMethod, err)
	}
	return s.audited(c, info.FullMethod, h(srv, &authedStream{ServerStream: ss, ctx: ctx}))
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a *authedStream) Context() context.Context { return a.ctx }
