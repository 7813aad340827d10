package gnmi

import (
	"context"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/internal/redact"
)

// msgInternal is what a client is told when a handler panics. The panic
// and its stack go to the log only.
const msgInternal = "internal error; the agent logged it"

// recoverUnary turns a panic of a unary handler (of any service on the
// grpc.Server: gNMI, gNSI certz) into codes.Internal, logged once with its
// stack, so one bad request never ends the agent.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(info.FullMethod, p)
			resp, err = nil, status.Error(codes.Internal, msgInternal)
		}
	}()
	return h(ctx, req)
}

// recoverStream is recoverUnary for streaming handlers. A panic in a
// goroutine the handler started is not caught here.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(info.FullMethod, p)
			err = status.Error(codes.Internal, msgInternal)
		}
	}()
	return h(srv, ss)
}

func (s *Server) logPanic(method string, p any) {
	s.log.Error("gRPC handler panic; the request failed with Internal and the agent goes on",
		"method", method, "panic", redact.Message(fmt.Sprint(p)), "stack", string(debug.Stack()))
}
