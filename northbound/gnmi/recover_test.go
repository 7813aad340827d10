package gnmi

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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

// panicky is a service that panics in its unary and its stream method, as
// importcheck did inside a certz Rotate.
type panicky struct {
	healthpb.UnimplementedHealthServer
}

func (panicky) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	var chain []int
	_ = chain[len(chain)]
	return nil, nil
}

func (panicky) Watch(*healthpb.HealthCheckRequest, grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	var chain []int
	_ = chain[len(chain)]
	return nil
}

// TestPanickingServiceOnTheServerAnswersInternal: a service registered on
// the gNMI gRPC server (as certz is) that panics answers Internal, and the
// server goes on serving gNMI.
func TestPanickingServiceOnTheServerAnswersInternal(t *testing.T) {
	e := newEnv(t, envOpts{register: []func(*grpc.Server){func(g *grpc.Server) { healthpb.RegisterHealthServer(g, panicky{}) }}})
	ctx := ctxT(t)
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: e.roots, ServerName: "localhost"})),
		grpc.WithPerRPCCredentials(userCreds{"admin", adminPW}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	_, err = h.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Internal || status.Convert(err).Message() != msgInternal {
		t.Errorf("unary panic: %v", err)
	}
	w, err := h.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.Internal || status.Convert(err).Message() != msgInternal {
		t.Errorf("stream panic: %v", err)
	}
	if _, err := e.admin().Capabilities(ctx, &gnmi.CapabilityRequest{}); err != nil {
		t.Fatalf("gNMI after the panics: %v", err)
	}
}
