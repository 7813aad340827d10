package gnmi

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRecoveryInterceptors: a panicking unary or stream handler (gNMI or
// gNSI certz, which share the grpc.Server) answers codes.Internal with a
// fixed message, and the panic is logged once with its stack; the stack
// never reaches the client.
func TestRecoveryInterceptors(t *testing.T) {
	var logBuf bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&logBuf, nil))}
	boom := func() {
		var b []byte
		lo := len(b) + 1
		_ = b[lo:] // slice bounds out of range, as importcheck did
	}

	_, uerr := s.recoverUnary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/gnoi.certz.v1.Certz/AddProfile"},
		func(context.Context, any) (any, error) { boom(); return nil, nil })
	serr := s.recoverStream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/gnoi.certz.v1.Certz/Rotate"},
		func(any, grpc.ServerStream) error { boom(); return nil })
	for _, err := range []error{uerr, serr} {
		st, _ := status.FromError(err)
		if st.Code() != codes.Internal || st.Message() != msgInternal {
			t.Errorf("error = %v, want Internal %q", err, msgInternal)
		}
	}
	log := logBuf.String()
	for _, m := range []string{"/gnoi.certz.v1.Certz/AddProfile", "/gnoi.certz.v1.Certz/Rotate"} {
		if n := strings.Count(log, "method="+m); n != 1 {
			t.Errorf("panic of %s logged %d times, want once:\n%s", m, n, log)
		}
	}
	if !strings.Contains(log, "stack=") || !strings.Contains(log, "recover_test.go") {
		t.Errorf("the log has no stack:\n%s", log)
	}

	// A handler that does not panic is passed through untouched.
	resp, err := s.recoverUnary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x"},
		func(context.Context, any) (any, error) { return "ok", status.Error(codes.NotFound, "nope") })
	if resp != "ok" || status.Code(err) != codes.NotFound {
		t.Errorf("pass-through = %v, %v", resp, err)
	}
}
