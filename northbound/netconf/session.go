package netconf

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/northbound/netconf/framing"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	"golang.org/x/crypto/ssh"
)

// outQueue is how many messages (replies and notifications) may wait for the
// client before Send blocks.
const outQueue = 64

// ErrSessionClosed reports a Send on a session that has ended.
var ErrSessionClosed = errors.New("netconf session closed")

// Session is one NETCONF session. Its methods are safe for concurrent use.
type Session struct {
	srv        *Server
	id         uint32
	user, role string
	remote     net.Addr
	loginTime  time.Time
	ch         ssh.Channel
	log        *slog.Logger

	parent context.Context // the server's
	ctx    context.Context
	cancel context.CancelFunc

	fr *framing.Reader
	fw *framing.Writer

	clientCaps []string
	base11     bool

	idle     atomic.Int64 // nanoseconds; <= 0 disables
	timedOut atomic.Bool

	counters counters

	out        chan outMsg
	stopping   chan struct{} // closed when the read loop is done
	writerDone chan struct{}

	mu       sync.Mutex
	killedBy uint32
	killed   bool

	afterReply []func() // run by the read loop once the current reply is queued
}

// Counters are the RFC 6022 counters of a session (and, summed, of the
// server).
type Counters struct {
	InRPCs           uint64 // correct rpc messages received
	InBadRPCs        uint64 // messages that were not correct rpcs
	OutRPCErrors     uint64 // replies that held an rpc-error
	OutNotifications uint64 // notifications queued for the client
}

// counters are the live Counters of a session or of the server.
type counters struct {
	inRPCs, inBadRPCs, outRPCErrors, outNotifications atomic.Uint64
}

func (c *counters) snapshot() Counters {
	return Counters{InRPCs: c.inRPCs.Load(), InBadRPCs: c.inBadRPCs.Load(),
		OutRPCErrors: c.outRPCErrors.Load(), OutNotifications: c.outNotifications.Load()}
}

// count adds one to the counter f picks, of the session and of its server.
func (s *Session) count(f func(*counters) *atomic.Uint64) {
	f(&s.counters).Add(1)
	f(&s.srv.stats).Add(1)
}

func inRPCs(c *counters) *atomic.Uint64           { return &c.inRPCs }
func inBadRPCs(c *counters) *atomic.Uint64        { return &c.inBadRPCs }
func outRPCErrors(c *counters) *atomic.Uint64     { return &c.outRPCErrors }
func outNotifications(c *counters) *atomic.Uint64 { return &c.outNotifications }

// Counters returns the session's counters.
func (s *Session) Counters() Counters { return s.counters.snapshot() }

// Server returns the server that runs the session.
func (s *Session) Server() *Server { return s.srv }

type outMsg struct {
	data          []byte
	switchChunked bool // switch the writer to chunked framing first
}

func (s *Server) newSession(ctx context.Context, sconn *ssh.ServerConn, ch ssh.Channel) *Session {
	id := s.newID()
	sess := &Session{
		srv:        s,
		id:         id,
		user:       sconn.User(),
		role:       sconn.Permissions.Extensions[extRole],
		remote:     sconn.RemoteAddr(),
		loginTime:  s.cfg.Clock.Now(),
		ch:         ch,
		fr:         framing.NewReader(ch, s.cfg.MaxMessageSize),
		fw:         framing.NewWriter(ch),
		out:        make(chan outMsg, outQueue),
		stopping:   make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	sess.log = s.log.With("session", id, "user", sess.user, "remote", sess.remote.String())
	sess.parent = ctx
	sess.ctx, sess.cancel = context.WithCancel(ctx)
	sess.idle.Store(int64(s.cfg.IdleTimeout))
	return sess
}

// ID returns the session-id, unique among running sessions and never 0.
func (s *Session) ID() uint32 { return s.id }

// Username returns the SSH user name.
func (s *Session) Username() string { return s.user }

// Role returns the role given by authentication.
func (s *Session) Role() string { return s.role }

// RemoteAddr returns the client's address.
func (s *Session) RemoteAddr() net.Addr { return s.remote }

// LoginTime returns when the session's channel was opened.
func (s *Session) LoginTime() time.Time { return s.loginTime }

// ClientCapabilities returns the capabilities of the client's hello.
func (s *Session) ClientCapabilities() []string { return append([]string(nil), s.clientCaps...) }

// ServerCapabilities returns the capabilities of the server's hello.
func (s *Session) ServerCapabilities() []string { return s.srv.Capabilities() }

// HasClientCapability reports whether the client advertised uri (ignoring
// parameters).
func (s *Session) HasClientCapability(uri string) bool {
	h := ncxml.Hello{Capabilities: s.clientCaps}
	return h.Has(uri)
}

// Base11 reports whether base:1.1 (chunked framing) was negotiated.
func (s *Session) Base11() bool { return s.base11 }

// Context returns the session's context, cancelled when the session ends.
func (s *Session) Context() context.Context { return s.ctx }

// SetIdleTimeout changes the idle timeout of this session from the next
// message on; d <= 0 disables it (for example while a notification
// subscription keeps the client silent).
func (s *Session) SetIdleTimeout(d time.Duration) { s.idle.Store(int64(d)) }

// KillSession ends session id on behalf of this one (kill-session). Refusing
// to kill the caller's own session is the Handler's job.
func (s *Session) KillSession(id uint32) error { return s.srv.KillSession(id, s.id) }

// Send queues a notification for the client, in order with replies. It
// blocks while the queue is full, until ctx is done or the session ends
// (ErrSessionClosed). A nil error means queued: a session that ends right
// after may not deliver it.
func (s *Session) Send(ctx context.Context, n ncxml.Notification) error {
	msg, err := ncxml.MarshalNotification(n)
	if err != nil {
		return fmt.Errorf("send notification on session %d: %w", s.id, err)
	}
	if err := s.enqueue(ctx, outMsg{data: msg}); err != nil {
		return err
	}
	s.count(outNotifications)
	return nil
}

func (s *Session) enqueue(ctx context.Context, m outMsg) error {
	select {
	case <-s.stopping:
		return ErrSessionClosed
	case <-s.writerDone:
		return ErrSessionClosed
	default:
	}
	select {
	case s.out <- m:
		return nil
	case <-s.stopping:
		return ErrSessionClosed
	case <-s.writerDone:
		return ErrSessionClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Session) kill(by uint32) {
	s.mu.Lock()
	s.killed, s.killedBy = true, by
	s.mu.Unlock()
	s.log.Info("netconf: session killed", "by", by)
	s.ch.Close()
}

// run serves the session until it ends. helloTimer was started when the
// channel opened and bounds the wait for the client's hello.
func (s *Session) run(helloTimer clock.Timer) {
	var wg sync.WaitGroup
	wg.Go(s.writeLoop)
	defer func() {
		close(s.stopping)
		s.finishWrites()
		s.cancel()
		wg.Wait()
	}()

	if err := s.enqueue(s.ctx, outMsg{data: ncxml.MarshalHello(s.srv.caps, s.id)}); err != nil {
		helloTimer.Stop()
		return
	}
	s.srv.inSessions.Add(1)
	msg, err := s.fr.ReadMessage()
	if !helloTimer.Stop() {
		s.log.Info("netconf: no client hello in time", "timeout", s.srv.cfg.HelloTimeout)
		s.srv.droppedSessions.Add(1)
		return
	}
	if err != nil {
		s.log.Info("netconf: reading client hello", "err", err)
		s.srv.droppedSessions.Add(1)
		return
	}
	hello, err := ncxml.ParseHello(msg)
	if reason := badHello(hello, err); reason != "" {
		s.log.Info("netconf: unusable client hello; closing", "reason", reason)
		s.srv.inBadHellos.Add(1)
		return
	}
	s.clientCaps = hello.Capabilities
	if hello.Has(ncxml.CapBase11) {
		s.base11 = true
		s.fr.SetChunked()
		if err := s.enqueue(s.ctx, outMsg{switchChunked: true}); err != nil {
			return
		}
	}

	obs, _ := s.srv.cfg.Handler.(SessionObserver)
	if obs != nil {
		if err := obs.SessionStart(s); err != nil {
			s.log.Warn("netconf: session refused by handler", "err", err)
			s.srv.droppedSessions.Add(1)
			return
		}
	}
	s.srv.register(s)
	s.log.Info("netconf: session started", "base", map[bool]string{false: "1.0", true: "1.1"}[s.base11], "role", s.role)
	term := s.loop()
	if term.Reason != TermClosed && term.Reason != TermKilled {
		s.srv.droppedSessions.Add(1)
	}
	s.srv.unregister(s)
	s.cancel()
	if obs != nil {
		obs.SessionEnd(s, term)
	}
	s.log.Info("netconf: session ended", "reason", term.Reason, "killed_by", term.KilledBy)
}

// badHello says what makes a client hello unusable, "" if nothing.
func badHello(h *ncxml.Hello, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case h.HasSessionID:
		return "the client hello carries a session-id (RFC 6241 8.1)"
	case !h.Has(ncxml.CapBase10) && !h.Has(ncxml.CapBase11):
		return fmt.Sprintf("the client supports neither base:1.0 nor base:1.1 (it sent %d other capabilities)", len(h.Capabilities))
	}
	return ""
}

// loop reads and answers rpcs until the session ends.
func (s *Session) loop() Termination {
	for {
		msg, err := s.readMessage()
		if err != nil {
			return s.readFailed(err)
		}
		req, err := ncxml.ParseRPC(msg)
		if err != nil {
			s.count(inBadRPCs)
			errs := ncxml.AsRPCErrors(err)
			s.reply(req, ncxml.Error(errs...))
			if errs[0].Tag == ncxml.TagMalformedMessage {
				s.log.Warn("netconf: malformed message; closing session", "err", err)
				return Termination{Reason: TermOther}
			}
			continue
		}
		s.count(inRPCs)
		if req.Operation == (xml.Name{Space: ncxml.BaseNS, Local: "close-session"}) {
			s.reply(req, ncxml.OK())
			return Termination{Reason: TermClosed}
		}
		ok := s.reply(req, s.handle(req))
		s.mu.Lock()
		after := s.afterReply
		s.afterReply = nil
		s.mu.Unlock()
		if !ok {
			return s.readFailed(net.ErrClosed)
		}
		for _, f := range after {
			f()
		}
	}
}

// AfterReply registers f to run once the reply to the rpc being handled is
// queued, so that what f sends (notifications of a new subscription) follows
// that reply. Call it only from Handler.Handle; f is dropped if the session
// ends first.
func (s *Session) AfterReply(f func()) {
	s.mu.Lock()
	s.afterReply = append(s.afterReply, f)
	s.mu.Unlock()
}

// readMessage reads one message within the idle timeout.
func (s *Session) readMessage() ([]byte, error) {
	if d := time.Duration(s.idle.Load()); d > 0 {
		t := s.srv.cfg.Clock.AfterFunc(d, func() {
			s.timedOut.Store(true)
			s.ch.Close()
		})
		defer t.Stop()
	}
	return s.fr.ReadMessage()
}

func (s *Session) readFailed(err error) Termination {
	s.mu.Lock()
	killed, by := s.killed, s.killedBy
	s.mu.Unlock()
	switch {
	case killed:
		return Termination{Reason: TermKilled, KilledBy: by}
	case s.timedOut.Load():
		s.log.Info("netconf: session timed out", "idle_timeout", time.Duration(s.idle.Load()))
		return Termination{Reason: TermTimeout}
	case s.ctx.Err() != nil:
		return Termination{Reason: TermOther}
	case errors.Is(err, framing.ErrMessageTooBig):
		s.count(inBadRPCs)
		s.log.Warn("netconf: message too big; closing session", "err", err)
		s.reply(nil, ncxml.Error(ncxml.TooBig(ncxml.RPC,
			fmt.Sprintf("message exceeds the limit of %d bytes; the session is closed", s.fr.MaxSize()))))
		return Termination{Reason: TermOther}
	case errors.Is(err, framing.ErrBadChunk):
		s.count(inBadRPCs)
		s.log.Warn("netconf: bad chunked framing; closing session", "err", err)
		s.reply(nil, ncxml.Error(ncxml.MalformedMessage("bad chunked framing; the session is closed")))
		return Termination{Reason: TermOther}
	case errors.Is(err, io.EOF):
		return Termination{Reason: TermDropped}
	default:
		s.log.Info("netconf: session read ended", "err", err)
		return Termination{Reason: TermDropped}
	}
}

// handle calls the Handler, turning a panic into operation-failed.
func (s *Session) handle(req *ncxml.Request) (reply ncxml.Reply) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("netconf: handler panic", "operation", req.Operation.Local, "panic", p, "stack", string(debug.Stack()))
			reply = ncxml.Error(ncxml.OperationFailed(ncxml.Application, "internal error while handling "+req.Operation.Local))
		}
	}()
	return s.srv.cfg.Handler.Handle(s.ctx, s, req)
}

// reply queues the reply to req; it reports false once the session is
// closing.
func (s *Session) reply(req *ncxml.Request, r ncxml.Reply) bool {
	if !s.base11 {
		r = r.MapErrors((*ncxml.RPCError).ForBase10)
	}
	if len(r.Errors()) > 0 {
		s.count(outRPCErrors)
	}
	return s.enqueue(s.ctx, outMsg{data: ncxml.MarshalReply(req, r)}) == nil
}

// writeLoop writes queued messages until the read loop is done and the queue
// drained, or a write fails.
func (s *Session) writeLoop() {
	defer close(s.writerDone)
	for {
		select {
		case m := <-s.out:
			if !s.write(m) {
				return
			}
		case <-s.stopping:
			for {
				select {
				case m := <-s.out:
					if !s.write(m) {
						return
					}
				default:
					return
				}
			}
		}
	}
}

func (s *Session) write(m outMsg) bool {
	if m.switchChunked {
		s.fw.SetChunked()
	}
	if m.data == nil {
		return true
	}
	t := s.srv.cfg.Clock.AfterFunc(s.srv.cfg.WriteTimeout, func() {
		s.log.Info("netconf: client does not read; closing session", "write_timeout", s.srv.cfg.WriteTimeout)
		s.timedOut.Store(true)
		s.ch.Close()
	})
	err := s.fw.WriteMessage(m.data)
	t.Stop()
	if err != nil {
		s.log.Info("netconf: write failed; closing session", "err", err)
		s.ch.Close()
		return false
	}
	return true
}

// finishWrites lets the writer drain the queue (bounded by WriteTimeout per
// message), then closes the channel.
func (s *Session) finishWrites() {
	s.mu.Lock()
	killed := s.killed
	s.mu.Unlock()
	if killed || s.parent.Err() != nil {
		s.ch.Close() // kill or shutdown: no drain
	}
	<-s.writerDone
	s.ch.Close()
}
