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
// stack, so one bad request never ends the agent. It also renders the
// message of every error status with redact.Message, the one rendering of
// error texts: no reply carries key material or a value whole.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(info.FullMethod, p)
			resp, err = nil, status.Error(codes.Internal, msgInternal)
		}
		err = redactStatus(err)
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
		err = redactStatus(err)
	}()
	return h(srv, ss)
}

// redactStatus returns err with its message rendered by redact.Message.
func redactStatus(err error) error {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err)
	m := redact.Message(st.Message())
	if m == st.Message() {
		return err
	}
	return status.Error(st.Code(), m)
}

func (s *Server) logPanic(method string, p any) {
	s.log.Error("gRPC handler panic; the request failed with Internal and the agent goes on",
		"method", method, "panic", redact.Message(fmt.Sprint(p)), "stack", string(debug.Stack()))
}
