package netconf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
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
	DefaultMaxHandshakes      = 256
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
	// connections are bounded to twice this plus MaxHandshakes.
	MaxSessions int
	// MaxSessionsPerUser bounds the NETCONF sessions one user name has
	// running at once, so one user (or one stolen password) cannot take
	// every slot; a session beyond it has its SSH channel refused with a
	// message saying so.
	MaxSessionsPerUser int
	// MaxHandshakes bounds the connections in their SSH handshake (before
	// or during authentication), all addresses together; one address may
	// hold half of them. A handshake costs a goroutine and its
	// key-exchange buffers, not a password check (those the Authenticator
	// bounds), so the default is high enough for a hundred guessers and an
	// administrator behind one address. At a bound, a new connection takes
	// the place of the oldest one that has failed authentication (see
	// Serve).
	MaxHandshakes int
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
	// handshakes holds the connections of each client address still in
	// their SSH handshake, oldest first; byRemote finds them by remote
	// address (host:port) for the password callback.
	handshakes   map[string][]*handshake
	nHandshake   int
	handshakeSeq uint64
	byRemote     map[string]*handshake
}

// handshake is a connection in its SSH handshake, guarded by Server.mu.
type handshake struct {
	host, remote string
	conn         net.Conn
	seq          uint64 // order of start
	// ctx ends when the connection is evicted (or the server stops), so
	// a password check or a delayed refusal waiting on it returns.
	ctx    context.Context
	cancel context.CancelFunc
	// failed: the connection has failed password authentication; it
	// may be evicted to make room for a new one.
	failed bool
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
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = DefaultMaxHandshakes
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
		conns:      make(chan struct{}, 2*cfg.MaxSessions+cfg.MaxHandshakes),
		perUser:    make(counts),
		netConns:   make(map[net.Conn]struct{}),
		sessions:   make(map[uint32]*Session),
		handshakes: make(map[string][]*handshake),
		byRemote:   make(map[string]*handshake),
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

// failedKey carries, in the ctx given to the Authenticator, the function
// that marks the connection as failed (see AuthFailed).
type failedKey struct{}

// AuthFailed returns, from the ctx given to Authenticator.Authenticate, a
// function to call as soon as the password is found wrong, before any
// delay of the refusal: the connection may then be closed to make room for
// a new one from the same address. Elsewhere it returns a no-op.
func AuthFailed(ctx context.Context) func() {
	if f, ok := ctx.Value(failedKey{}).(func()); ok {
		return f
	}
	return func() {}
}

func (s *Server) checkPassword(c ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
	// The handshake cannot outlast HelloTimeout (a socket deadline), so
	// neither may the wait for a password check; nor the server, nor the
	// connection's eviction.
	parent := s.stopped
	s.mu.Lock()
	h := s.byRemote[c.RemoteAddr().String()]
	s.mu.Unlock()
	markFailed := func() {}
	if h != nil {
		parent = h.ctx
		markFailed = func() { s.markFailed(h) }
	}
	ctx, cancel := context.WithTimeout(parent, s.cfg.HelloTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, failedKey{}, markFailed)
	role, err := s.cfg.Authenticator.Authenticate(ctx, c.User(), string(password), c.RemoteAddr())
	if err != nil {
		markFailed()
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
		// The connections in their SSH handshake are bounded, per
		// address too (see MaxHandshakes). At a bound, the new
		// connection takes the place of the oldest one (of its address,
		// else of any) that has failed authentication: a guesser's
		// connections that were refused cannot keep the administrator
		// out, even from the same address. With none to evict, the new
		// one is closed before the key exchange, which costs nothing.
		hs, ok := s.startHandshake(c)
		if !ok {
			s.log.Debug("netconf: too many SSH handshakes; closing new connection", "remote", c.RemoteAddr().String(),
				"limit", s.cfg.MaxHandshakes, "per-address-limit", max(s.cfg.MaxHandshakes/2, 1))
			c.Close()
			continue
		}
		endHandshake := sync.OnceFunc(func() { s.endHandshake(hs) })
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

// startHandshake records c as in its SSH handshake, evicting the oldest
// failed one of its address (at the per-address bound) or of any address
// (at the total bound) when needed; false when there is none to evict.
func (s *Server) startHandshake(c net.Conn) (*handshake, bool) {
	remote := c.RemoteAddr().String()
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.handshakes[host]) >= max(s.cfg.MaxHandshakes/2, 1) && !s.evictFailed(s.handshakes[host]) {
		return nil, false
	}
	if s.nHandshake >= s.cfg.MaxHandshakes {
		var oldest *handshake
		for _, l := range s.handshakes {
			for _, h := range l {
				if h.failed {
					if oldest == nil || h.seq < oldest.seq {
						oldest = h
					}
					break
				}
			}
		}
		if oldest == nil {
			return nil, false
		}
		s.evict(oldest)
	}
	s.handshakeSeq++
	ctx, cancel := context.WithCancel(s.stopped)
	h := &handshake{host: host, remote: remote, conn: c, seq: s.handshakeSeq, ctx: ctx, cancel: cancel}
	s.handshakes[host] = append(s.handshakes[host], h)
	s.byRemote[remote] = h
	s.nHandshake++
	return h, true
}

// evictFailed evicts the oldest failed handshake of l; s.mu is held.
func (s *Server) evictFailed(l []*handshake) bool {
	for _, h := range l {
		if h.failed {
			s.evict(h)
			return true
		}
	}
	return false
}

// evict closes the handshake h and forgets it; s.mu is held.
func (s *Server) evict(h *handshake) {
	s.log.Debug("netconf: closing an SSH connection that failed authentication to make room for a new one", "remote", h.remote)
	s.forget(h)
	h.cancel()
	h.conn.Close()
}

// forget drops h from the handshakes; s.mu is held.
func (s *Server) forget(h *handshake) {
	l := s.handshakes[h.host]
	i := slices.Index(l, h)
	if i < 0 {
		return
	}
	l = slices.Delete(l, i, i+1)
	if len(l) == 0 {
		delete(s.handshakes, h.host)
	} else {
		s.handshakes[h.host] = l
	}
	if s.byRemote[h.remote] == h {
		delete(s.byRemote, h.remote)
	}
	s.nHandshake--
}

func (s *Server) markFailed(h *handshake) {
	s.mu.Lock()
	h.failed = true
	s.mu.Unlock()
}

func (s *Server) endHandshake(h *handshake) {
	s.mu.Lock()
	s.forget(h)
	s.mu.Unlock()
	h.cancel()
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
