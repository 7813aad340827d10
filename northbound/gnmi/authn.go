package gnmi

import (
	"context"
	"crypto/x509"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/agent"
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
func (c Caller) Agent() agent.Caller { return agent.Caller{User: c.User, Role: c.Role} }

// gNMI methods and the check each needs. Methods of other services on the
// same grpc.Server are authenticated here and authorised by their service.
var methodNeeds = map[string]func(role string) bool{
	"/gnmi.gNMI/Capabilities": auth.CanRead,
	"/gnmi.gNMI/Get":          auth.CanRead,
	"/gnmi.gNMI/Subscribe":    auth.CanRead,
	"/gnmi.gNMI/Set":          auth.CanWrite,
}

// maxCredential bounds user names and passwords taken from metadata.
const maxCredential = 1024

// authenticate finds the caller: username/password metadata, else a
// verified client certificate whose common name is a user.
func (s *Server) authenticate(ctx context.Context, method string) (context.Context, error) {
	c := Caller{}
	p, _ := peer.FromContext(ctx)
	if p != nil && p.Addr != nil {
		c.Peer = p.Addr.String()
	}
	md, _ := metadata.FromIncomingContext(ctx)
	user, pw := first(md, "username"), first(md, "password")
	switch {
	case user != "" || pw != "":
		if len(user) > maxCredential || len(pw) > maxCredential {
			return nil, status.Error(codes.Unauthenticated, "user name or password too long")
		}
		role, err := s.auth.Authenticate(user, pw)
		if err != nil {
			s.log.Warn("gNMI login refused", "user", user, "peer", c.Peer, "method", method)
			return nil, status.Error(codes.Unauthenticated, "invalid user name or password")
		}
		c.User, c.Role, c.Via = user, role, "password"
	default:
		cn, ok := verifiedCN(p)
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "authentication required: send username and password metadata, or a client certificate signed by the --client-ca")
		}
		role, ok := s.auth.RoleFor(cn)
		if !ok {
			s.log.Warn("gNMI client certificate names no user", "cn", cn, "peer", c.Peer)
			return nil, status.Errorf(codes.Unauthenticated, "client certificate CN %q is not a user", cn)
		}
		c.User, c.Role, c.Via = cn, role, "certificate"
	}
	if need, ok := methodNeeds[method]; ok && !need(c.Role) {
		what := "read"
		if method == "/gnmi.gNMI/Set" {
			what = "change the configuration"
		}
		return nil, status.Errorf(codes.PermissionDenied, "user %s (role %s) may not %s", c.User, c.Role, what)
	}
	return context.WithValue(ctx, callerKey{}, c), nil
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
	ctx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &authedStream{ServerStream: ss, ctx: ctx})
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a *authedStream) Context() context.Context { return a.ctx }
