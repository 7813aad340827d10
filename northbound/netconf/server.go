package netconf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/northbound/netconf/framing"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	"golang.org/x/crypto/ssh"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxSessions        = 32
	DefaultMaxSessionsPerUser = 8
	DefaultHelloTimeout       = 30 * time.Second
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultWriteTimeout       = time.Minute
)

// Authenticator checks a user's password and returns the user's role. It is
// shared with the other northbound servers and must be safe for concurrent
// use. It may wait (bounded checks, delays after failures) until ctx ends;
// remote is the client's address. It audits and logs refusals itself.
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string, remote net.Addr) (role string, err error)
}

// Config configures a Server. StateDir and Handler are required, and at
// least one of Authenticator and KeyRole.
type Config struct {
	// StateDir holds HostKeyFile (created if missing) and
	// AuthorizedKeysFile.
	StateDir string
	Handler  Handler
	// Authenticator enables SSH password authentication.
	Authenticator Authenticator
	// KeyRole enables public-key authentication against AuthorizedKeysFile
	// and returns the role of the SSH user name.
	KeyRole func(user string) (role string, err error)
	// Capabilities are advertised in the server hello after base:1.0 and
	// base:1.1.
	Capabilities []string
	// MaxSessions bounds the NETCONF sessions running at once; a client
	// beyond it has its SSH channel refused with a message saying so. TCP
	// connections (authenticated or not) are bounded to twice this.
	MaxSessions int
	// MaxSessionsPerUser bounds the NETCONF sessions one user name has
	// running at once, so one user (or one stolen password) cannot take
	// every slot; a session beyond it has its SSH channel refused with a
	// message saying so.
	MaxSessionsPerUser int
	// HelloTimeout bounds the SSH handshake and authentication, and then
	// the time until the client's hello has arrived.
	HelloTimeout time.Duration
	// IdleTimeout ends a session that sends no complete message for this
	// long (a client that stalls in the middle of a message included);
	// each rpc starts it again. DefaultIdleTimeout when 0; negative
	// disables it. Session.SetIdleTimeout overrides it per session (a
	// notification subscription turns it off).
	IdleTimeout time.Duration
	// WriteTimeout ends a session whose client does not take a message
	// within this time.
	WriteTimeout time.Duration
	// MaxMessageSize bounds one incoming message (framing excluded);
	// framing.DefaultMaxMessageSize when 0.
	MaxMessageSize int
	// Clock drives the hello, idle and write timers (clock.Real when nil).
	// The deadline of the SSH handshake is a socket deadline and so always
	// on the wall clock.
	Clock clock.Clock
	// Logger receives session and authentication events (slog.Default
	// when nil). Passwords and message contents are never logged.
	Logger *slog.Logger
}

// Server is a NETCONF-over-SSH server.
type Server struct {
	// startTime, stats and the session counters are the RFC 6022
	// statistics of the server (see Statistics).
	startTime                                time.Time
	stats                                    counters
	inBadHellos, inSessions, droppedSessions atomic.Uint64

	cfg    Config
	ssh    *ssh.ServerConfig
	log    *slog.Logger
	caps   []string
	slots  chan struct{} // one per running session
	conns  chan struct{} // one per TCP connection
	nextID atomic.Uint32

	// stopped ends the password checks still waiting when Serve stops.
	stopped context.Context
	stop    context.CancelFunc

	mu       sync.Mutex
	closing  bool
	perUser  counts // session channels open per user name
	netConns map[net.Conn]struct{}
	sessions map[uint32]*Session
	// handshakes counts the connections of each client address still in
	// their SSH handshake.
	handshakes counts
}

// counts is how many of something each key holds (the sessions of a user,
// the handshakes of an address), guarded by Server.mu.
type counts map[string]int

// take counts one more for key, unless key holds limit already.
func (c counts) take(key string, limit int) bool {
	if c[key] >= limit {
		return false
	}
	c[key]++
	return true
}

// release counts one less for key, forgetting the key at zero.
func (c counts) release(key string) {
	if c[key] <= 1 {
		delete(c, key)
		return
	}
	c[key]--
}

// Permission extensions set by authentication.
const (
	extRole   = "pki-agent-role"
	extMethod = "pki-agent-auth-method"
)

// NewServer checks cfg, loads or creates the host key and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("netconf server: no state directory")
	}
	if cfg.Handler == nil {
		return nil, errors.New("netconf server: no handler")
	}
	if cfg.Authenticator == nil && cfg.KeyRole == nil {
		return nil, errors.New("netconf server: no authentication method (password or public key)")
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxSessionsPerUser <= 0 {
		cfg.MaxSessionsPerUser = DefaultMaxSessionsPerUser
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = DefaultHelloTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = framing.DefaultMaxMessageSize
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		caps:       append([]string{ncxml.CapBase10, ncxml.CapBase11}, cfg.Capabilities...),
		slots:      make(chan struct{}, cfg.MaxSessions),
		conns:      make(chan struct{}, 2*cfg.MaxSessions),
		perUser:    make(counts),
		netConns:   make(map[net.Conn]struct{}),
		sessions:   make(map[uint32]*Session),
		handshakes: make(counts),
	}
	s.stopped, s.stop = context.WithCancel(context.Background())
	signer, err := loadOrCreateHostKey(cfg.StateDir, s.log)
	if err != nil {
		return nil, fmt.Errorf("netconf server: %w", err)
	}
	s.ssh = &ssh.ServerConfig{ServerVersion: "SSH-2.0-pki-agent"}
	s.ssh.AddHostKey(signer)
	if cfg.Authenticator != nil {
		s.ssh.PasswordCallback = s.checkPassword
	}
	if cfg.KeyRole != nil {
		s.ssh.PublicKeyCallback = s.checkKey
	}
	s.startTime = cfg.Clock.Now()
	return s, nil
}

// Capabilities returns the capabilities of the server hello.
func (s *Server) Capabilities() []string { return append([]string(nil), s.caps...) }

func (s *Server) checkPassword(c ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
	// The handshake cannot outlast HelloTimeout (a socket deadline), so
	// neither may the wait for a password check; nor the server.
	ctx, cancel := context.WithTimeout(s.stopped, s.cfg.HelloTimeout)
	defer cancel()
	role, err := s.cfg.Authenticator.Authenticate(ctx, c.User(), string(password), c.RemoteAddr())
	if err != nil {
		return nil, fmt.Errorf("password authentication: %w", err)
	}
	return &ssh.Permissions{Extensions: map[string]string{extRole: role, extMethod: "password"}}, nil
}

func (s *Server) checkKey(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	ok, err := authorizedKey(s.cfg.StateDir, c.User(), key)
	if err != nil {
		s.log.Error("netconf: public-key authentication", "err", err)
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("public key %s is not authorized for %q", ssh.FingerprintSHA256(key), c.User())
	}
	role, err := s.cfg.KeyRole(c.User())
	if err != nil {
		s.log.Warn("netconf: public key accepted but user has no role", "user", c.User(), "err", err)
		return nil, fmt.Errorf("role of %q: %w", c.User(), err)
	}
	return &ssh.Permissions{Extensions: map[string]string{extRole: role, extMethod: "publickey " + ssh.FingerprintSHA256(key)}}, nil
}

// ListenAndServe listens on addr (TCP) and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("netconf: listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx is done or ln fails, then closes
// ln and every connection and returns once all goroutines have ended (the
// Handler must return when its ctx is cancelled). It returns nil when
// stopped by ctx. Call it once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		s.stop()
		ln.Close()
		s.mu.Lock()
		s.closing = true
		for c := range s.netConns {
			c.Close()
		}
		s.mu.Unlock()
	})
	s.log.Info("netconf: serving NETCONF over SSH", "addr", ln.Addr().String())
	var err error
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				var ne net.Error
				if errors.As(aerr, &ne) && ne.Timeout() {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				err = fmt.Errorf("netconf: accept: %w", aerr)
			}
			break
		}
		// One address may hold a quarter of the connections in their SSH
		// handshake, so a password guesser cannot take them all (the
		// administrator on another address still gets in); the surplus
		// is closed before the key exchange, which costs nothing.
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !s.startHandshake(host) {
			s.log.Debug("netconf: too many SSH handshakes from one address; closing new one", "remote", c.RemoteAddr().String(), "limit", s.maxHandshakes())
			c.Close()
			continue
		}
		endHandshake := sync.OnceFunc(func() { s.endHandshake(host) })
		select {
		case s.conns <- struct{}{}:
		default:
			s.log.Warn("netconf: too many connections; closing new one", "remote", c.RemoteAddr().String(), "limit", cap(s.conns))
			endHandshake()
			c.Close()
			continue
		}
		if !s.track(c) {
			endHandshake()
			c.Close()
			<-s.conns
			continue
		}
		wg.Go(func() {
			defer func() { <-s.conns }()
			defer s.untrack(c)
			defer endHandshake()
			s.serveConn(ctx, c, endHandshake)
		})
	}
	cancel()
	wg.Wait()
	s.log.Info("netconf: stopped")
	return err
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.netConns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.netConns, c)
	s.mu.Unlock()
	c.Close()
}

func (s *Server) maxHandshakes() int { return max(cap(s.conns)/4, 1) }

// startHandshake counts a connection of host in its SSH handshake, unless
// host has maxHandshakes already.
func (s *Server) startHandshake(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshakes.take(host, s.maxHandshakes())
}

func (s *Server) endHandshake(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handshakes.release(host)
}

// serveConn runs the SSH connection c: handshake, then one NETCONF session
// per session channel that asks for the netconf subsystem. The connection
// closes when its last session ends, or after HelloTimeout if none starts.
func (s *Server) serveConn(ctx context.Context, c net.Conn, endHandshake func()) {
	remote := c.RemoteAddr().String()
	// A socket deadline is on the wall clock, not the injected one.
	if err := c.SetDeadline(time.Now().Add(s.cfg.HelloTimeout)); err != nil {
		s.log.Debug("netconf: set handshake deadline", "remote", remote, "err", err)
	}
	sconn, chans, reqs, err := ssh.NewServerConn(c, s.ssh)
	endHandshake()
	if err != nil {
		// Refused passwords are logged (and audited) by the
		// Authenticator, a few lines per flood.
		s.log.Debug("netconf: SSH handshake failed", "remote", remote, "err", err)
		return
	}
	defer sconn.Close()
	if err := c.SetDeadline(time.Time{}); err != nil {
		s.log.Debug("netconf: clear handshake deadline", "remote", remote, "err", err)
	}
	s.log.Info("netconf: SSH user authenticated", "user", sconn.User(), "remote", remote,
		"method", sconn.Permissions.Extensions[extMethod], "role", sconn.Permissions.Extensions[extRole])

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { ssh.DiscardRequests(reqs) })

	// active counts the channels being served; the connection closes when
	// it drops to zero, or at the hello deadline if nothing ever opened.
	var mu sync.Mutex
	active, opened := 0, false
	noSession := s.cfg.Clock.AfterFunc(s.cfg.HelloTimeout, func() {
		mu.Lock()
		defer mu.Unlock()
		if !opened {
			s.log.Info("netconf: no NETCONF session opened in time; closing connection", "user", sconn.User(), "remote", remote)
			sconn.Close()
		}
	})
	defer noSession.Stop()

	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session channels are served")
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			msg := fmt.Sprintf("too many NETCONF sessions (limit %d); try again later", cap(s.slots))
			s.log.Warn("netconf: session refused", "user", sconn.User(), "remote", remote, "reason", msg)
			nc.Reject(ssh.ResourceShortage, msg)
			continue
		}
		if !s.takeUserSlot(sconn.User()) {
			<-s.slots
			msg := fmt.Sprintf("user %q already has %d NETCONF sessions, the most one user may have at once; close one and try again",
				sconn.User(), s.cfg.MaxSessionsPerUser)
			s.log.Warn("netconf: session refused", "user", sconn.User(), "remote", remote, "reason", msg)
			nc.Reject(ssh.ResourceShortage, msg)
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			s.releaseUserSlot(sconn.User())
			<-s.slots
			s.log.Info("netconf: accept channel", "remote", remote, "err", err)
			continue
		}
		mu.Lock()
		active++
		opened = true
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				s.releaseUserSlot(sconn.User())
				<-s.slots
				mu.Lock()
				active--
				last := active == 0
				mu.Unlock()
				if last {
					sconn.Close()
				}
			}()
			s.serveChannel(ctx, sconn, ch, chReqs, &wg)
		})
	}
}

// serveChannel waits for the netconf subsystem request, then runs the
// session. Other requests are refused.
func (s *Server) serveChannel(ctx context.Context, sconn *ssh.ServerConn, ch ssh.Channel, reqs <-chan *ssh.Request, wg *sync.WaitGroup) {
	defer ch.Close()
	timer := s.cfg.Clock.AfterFunc(s.cfg.HelloTimeout, func() { ch.Close() })
	started := false
	for req := range reqs {
		var sub struct{ Name string }
		if req.Type == "subsystem" && ssh.Unmarshal(req.Payload, &sub) == nil && sub.Name == "netconf" {
			req.Reply(true, nil)
			started = true
			break
		}
		req.Reply(false, nil)
	}
	if !started {
		timer.Stop()
		return
	}
	wg.Go(func() {
		for req := range reqs {
			req.Reply(false, nil)
		}
	})
	sess := s.newSession(ctx, sconn, ch)
	sess.run(timer)
}

// takeUserSlot counts one more session of user, unless user is at
// MaxSessionsPerUser.
func (s *Server) takeUserSlot(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perUser.take(user, s.cfg.MaxSessionsPerUser)
}

func (s *Server) releaseUserSlot(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perUser.release(user)
}

// Statistics are the server-wide counters of RFC 6022
// /netconf-state/statistics.
type Statistics struct {
	StartTime time.Time // when the server was made
	// InBadHellos counts sessions dropped for an unusable client hello;
	// InSessions sessions whose server hello was sent; DroppedSessions
	// sessions that ended other than by close-session or kill-session.
	InBadHellos, InSessions, DroppedSessions uint64
	Counters
}

// Statistics returns the server-wide counters.
func (s *Server) Statistics() Statistics {
	return Statistics{
		StartTime:       s.startTime,
		InBadHellos:     s.inBadHellos.Load(),
		InSessions:      s.inSessions.Load(),
		DroppedSessions: s.droppedSessions.Load(),
		Counters:        s.stats.snapshot(),
	}
}

func (s *Server) register(sess *Session) {
	s.mu.Lock()
	s.sessions[sess.id] = sess
	s.mu.Unlock()
}

func (s *Server) unregister(sess *Session) {
	s.mu.Lock()
	delete(s.sessions, sess.id)
	s.mu.Unlock()
}

// Sessions returns the running sessions (those past the hello exchange).
func (s *Server) Sessions() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}

// ErrNoSession reports a session id that names no running session.
var ErrNoSession = errors.New("no such session")

// KillSession ends session id as kill-session does, on behalf of session by
// (0: not a NETCONF session). It returns once the session is told to end,
// without waiting for it.
func (s *Server) KillSession(id, by uint32) error {
	s.mu.Lock()
	sess := s.sessions[id]
	s.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("kill session %d: %w", id, ErrNoSession)
	}
	sess.kill(by)
	return nil
}

// newID returns a unique non-zero session id.
func (s *Server) newID() uint32 {
	for {
		id := s.nextID.Add(1)
		if id == 0 {
			continue
		}
		s.mu.Lock()
		_, used := s.sessions[id]
		s.mu.Unlock()
		if !used {
			return id
		}
	}
}
