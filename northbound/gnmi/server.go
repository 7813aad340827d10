package gnmi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	// Registers the gzip compressor: clients that send or accept
	// grpc-encoding gzip (gnmic --gzip) are served compressed.
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/keepalive"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/northbound/auth"
	"github.com/pkiagent/pkiagent/telemetry"
	yangmod "github.com/pkiagent/pkiagent/yang"
)

// Version is the gNMI specification version served.
const Version = "0.10.0"

// Authenticator checks users: northbound/auth.Users implements it.
type Authenticator interface {
	// Login checks a password and returns the user's role; it may wait
	// (bounded checks, delays after failures) until ctx ends.
	Login(ctx context.Context, a auth.Attempt) (role string, err error)
	// RoleFor returns the role of a user who logged in with a client
	// certificate whose common name is the user name.
	RoleFor(user string) (role string, ok bool)
}

// Limits bound what one client can make the server do. Zero fields take
// the defaults in DefaultLimits.
type Limits struct {
	// MaxMsgSize bounds a request or response message (bytes).
	MaxMsgSize int
	// MaxSetOps bounds the deletes + replaces + updates of one Set.
	MaxSetOps int
	// MaxStreams bounds the Subscribe streams open at once, and
	// MaxStreamsPerUser those of one user.
	MaxStreams        int
	MaxStreamsPerUser int
	// MaxSubscriptions bounds the paths of one SubscriptionList.
	MaxSubscriptions int
	// MaxPending bounds the distinct paths queued for one stream that the
	// client has not read yet; beyond it the stream ends with
	// ResourceExhausted.
	MaxPending int
	// StallTimeout ends a stream whose client has not taken a message for
	// this long while updates wait (ResourceExhausted).
	StallTimeout time.Duration
	// MinSampleInterval is the shortest SAMPLE interval and heartbeat; a
	// sample_interval of 0 means this one.
	MinSampleInterval time.Duration
	// DefaultRollback is the rollback duration of a confirmed commit that
	// names none (gnmi-commit-confirmed.md: 10 minutes).
	DefaultRollback time.Duration
}

// DefaultLimits are the documented limits (see README.md).
var DefaultLimits = Limits{
	MaxMsgSize:        16 << 20,
	MaxSetOps:         10000,
	MaxStreams:        1024,
	MaxStreamsPerUser: 64,
	MaxSubscriptions:  256,
	MaxPending:        100000,
	StallTimeout:      60 * time.Second,
	MinSampleInterval: 100 * time.Millisecond,
	DefaultRollback:   10 * time.Minute,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxMsgSize > 0 {
		d.MaxMsgSize = l.MaxMsgSize
	}
	if l.MaxSetOps > 0 {
		d.MaxSetOps = l.MaxSetOps
	}
	if l.MaxStreams > 0 {
		d.MaxStreams = l.MaxStreams
	}
	if l.MaxStreamsPerUser > 0 {
		d.MaxStreamsPerUser = l.MaxStreamsPerUser
	}
	if l.MaxSubscriptions > 0 {
		d.MaxSubscriptions = l.MaxSubscriptions
	}
	if l.MaxPending > 0 {
		d.MaxPending = l.MaxPending
	}
	if l.StallTimeout > 0 {
		d.StallTimeout = l.StallTimeout
	}
	if l.MinSampleInterval > 0 {
		d.MinSampleInterval = l.MinSampleInterval
	}
	if l.DefaultRollback > 0 {
		d.DefaultRollback = l.DefaultRollback
	}
	return d
}

// Config is what a Server is built from.
type Config struct {
	Store *agent.Store
	// Bus is what the store, the engine and the agent's loops publish on;
	// ON_CHANGE subscriptions follow it.
	Bus  *telemetry.Bus
	Auth Authenticator
	// Clock drives SAMPLE and heartbeat timers (Store.Clock() when nil).
	Clock  clock.Clock
	Logger *slog.Logger
	Limits Limits
	// Audit receives a record of each operation refused for the caller's
	// role (permitted false), coalesced per user and operation (nil: not
	// audited). Refused logins are audited by Auth.
	Audit Auditor
}

// Auditor writes audit records of refusals, coalescing those of one key
// (audit.Coalescer).
type Auditor interface {
	Coalesce(key string, ev audit.Event) bool
}

// Server is the gNMI service. Create it with New, register it on a
// grpc.Server with Register (or use Serve), and run its telemetry
// dispatcher with Run.
type Server struct {
	gnmi.UnimplementedGNMIServer

	store  *agent.Store
	auth   Authenticator
	audit  Auditor
	clock  clock.Clock
	log    *slog.Logger
	limits Limits

	disp *dispatcher
	// defaults caches running with its defaults filled in, for Get.
	defaults defaultsCache
	// wg tracks goroutines that outlive the RPC that started them (a
	// stream's sender, which may be blocked on a client that does not
	// read until gRPC cancels the stream).
	wg sync.WaitGroup

	mu      sync.Mutex
	streams int
	perUser map[string]int

	seq atomic.Uint64

	// stopping is closed when Serve begins to stop: streams end at once.
	stopping chan struct{}
	stopOnce sync.Once
}

// New returns a Server over cfg.Store.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("gnmi: no datastore")
	}
	if cfg.Bus == nil {
		return nil, errors.New("gnmi: no telemetry bus")
	}
	if cfg.Auth == nil {
		return nil, errors.New("gnmi: no authenticator")
	}
	if cfg.Clock == nil {
		cfg.Clock = cfg.Store.Clock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		store:    cfg.Store,
		auth:     cfg.Auth,
		audit:    cfg.Audit,
		clock:    cfg.Clock,
		log:      cfg.Logger.With("component", "gnmi"),
		limits:   cfg.Limits.withDefaults(),
		perUser:  map[string]int{},
		stopping: make(chan struct{}),
	}
	s.disp = newDispatcher(s, cfg.Bus)
	return s, nil
}

// ServerOptions are the grpc.Server options the service needs: message
// size limits, keepalive, panic recovery and the authentication
// interceptors. Other
// services on the same grpc.Server (gNSI certz) get the same
// authentication and find the caller with CallerFrom.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.limits.MaxMsgSize),
		grpc.MaxSendMsgSize(s.limits.MaxMsgSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Recovery first, so a panic anywhere below (authentication
		// included) becomes codes.Internal instead of ending the agent.
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.unaryAuth),
		grpc.ChainStreamInterceptor(s.recoverStream, s.streamAuth),
	}
}

// Register registers the gNMI service on g.
func (s *Server) Register(g *grpc.Server) { gnmi.RegisterGNMIServer(g, s) }

// Run fans the store's events out to Subscribe streams until ctx ends.
// It must run for ON_CHANGE subscriptions to see changes.
func (s *Server) Run(ctx context.Context) error {
	err := s.disp.run(ctx)
	s.wg.Wait()
	return err
}

// Serve is the whole server: it runs the dispatcher and serves gNMI (and
// whatever register adds) on lis until ctx ends, then stops gracefully
// (in-flight unary RPCs finish, streams are cancelled). tlsConfig nil
// serves plaintext.
func (s *Server) Serve(ctx context.Context, lis net.Listener, tlsConfig *tls.Config, register ...func(*grpc.Server)) error {
	opts := s.ServerOptions()
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	g := grpc.NewServer(opts...)
	s.Register(g)
	for _, r := range register {
		r(g)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var runErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		runErr = s.disp.run(ctx)
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		s.stopOnce.Do(func() { close(s.stopping) })
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			g.Stop()
			<-stopped
		}
	}()
	s.log.Info("gNMI listening", "addr", lis.Addr().String(), "tls", tlsConfig != nil)
	err := g.Serve(lis)
	cancel()
	wg.Wait()
	s.wg.Wait()
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("gnmi: serving on %s: %w", lis.Addr(), err)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// Capabilities lists our modules, encodings, version and extensions.
func (s *Server) Capabilities(ctx context.Context, req *gnmi.CapabilityRequest) (*gnmi.CapabilityResponse, error) {
	var models []*gnmi.ModelData
	for _, m := range yangmod.Modules {
		org := "IETF NETMOD (Network Modeling) Working Group"
		if !m.ImportOnly {
			org = "pki-agent"
		}
		models = append(models, &gnmi.ModelData{Name: m.Name, Organization: org, Version: m.Revision})
	}
	return &gnmi.CapabilityResponse{
		SupportedModels:    models,
		SupportedEncodings: []gnmi.Encoding{gnmi.Encoding_JSON, gnmi.Encoding_JSON_IETF, gnmi.Encoding_PROTO},
		GNMIVersion:        Version,
		// The commit-confirmed extension (gnmi_ext.Commit) is supported on
		// Set; an empty Commit says so.
		Extension: []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: &gnmi_ext.Commit{}}}},
	}, nil
}
