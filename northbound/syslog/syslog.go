// Package syslog sends the agent's alarms, audit events and certificate
// expiry alerts as RFC 5424 messages to one receiver, over UDP, TCP (RFC
// 6587 octet counting) or TLS (RFC 5425), without ever holding up the
// agent: messages wait in a bounded queue written by a goroutine of its
// own, which reconnects with a backoff; a message that finds the queue full
// is dropped and counted.
package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/telemetry"
)

// StateReader is the part of agent.Store the sender reads: the state of
// the certificates, for the expiry alerts.
type StateReader interface {
	State() (*gen.Device, error)
}

// Config configures a Sender.
type Config struct {
	// Addr is the receiver: udp://HOST:PORT, tcp://HOST:PORT or
	// tls://HOST:PORT.
	Addr string
	// TLS is the client configuration of tls:// (its RootCAs verify the
	// receiver; ServerName defaults to HOST).
	TLS *tls.Config
	// Bus carries the alarms and the changes of the certificates; State
	// reads the certificates. Without them only what Audit is given is
	// sent.
	Bus   *telemetry.Bus
	State StateReader
	// MarksFile keeps the expiry alerts sent, so a restart sends none
	// twice (empty: not kept).
	MarksFile string
	// Hostname and AppName fill the RFC 5424 header (defaults: the host
	// name, "pki-agent").
	Hostname, AppName string
	// QueueSize bounds the messages waiting to be written (default 1024).
	QueueSize int
	Clock     clock.Clock
	Logger    *slog.Logger
}

// Defaults of the transport.
const (
	defaultQueue = 1024
	dialTimeout  = 5 * time.Second
	writeTimeout = 5 * time.Second
	minBackoff   = time.Second
	maxBackoff   = 30 * time.Second
	// dropReport is the least time between two log lines about drops.
	dropReport = time.Minute
	// expiryEvery is how often the certificates are checked for expiry
	// alerts besides when they change.
	expiryEvery = time.Hour
	// maxMessage bounds one message (RFC 5424 receivers must take 480
	// bytes and should take 2048; rsyslog takes 8 KiB by default).
	maxMessage = 8 << 10
)

// facility is local7, where network devices log by custom.
const facility = 23

// RFC 5424 severities.
const (
	sevAlert   = 1
	sevCrit    = 2
	sevErr     = 3
	sevWarning = 4
	sevNotice  = 5
	sevInfo    = 6
)

// Sender is a syslog client. Create it with New, then Run it.
type Sender struct {
	cfg     Config
	network string // udp, tcp or tls
	host    string // host:port
	queue   chan message

	sent, dropped atomic.Uint64
	connected     atomic.Bool

	mu         sync.Mutex
	lastReport time.Time
	unreported uint64

	expiry *expiryAlerts
	// sub follows the bus from New on, so nothing published before Run
	// is missed.
	sub *telemetry.Subscription
}

// ErrAddr: the --syslog address is not udp://, tcp:// or tls://HOST:PORT.
var ErrAddr = errors.New("bad syslog address")

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	network, host, err := ParseAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.AppName == "" {
		cfg.AppName = "pki-agent"
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = defaultQueue
	}
	s := &Sender{cfg: cfg, network: network, host: host, queue: make(chan message, cfg.QueueSize)}
	if s.expiry, err = loadMarks(cfg.MarksFile); err != nil {
		return nil, err
	}
	if cfg.Bus != nil && cfg.State != nil {
		s.sub = cfg.Bus.Subscribe(4096)
	}
	return s, nil
}

// ParseAddr splits udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT.
func ParseAddr(addr string) (network, hostport string, err error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%w %q: want udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT", ErrAddr, addr)
	}
	switch u.Scheme {
	case "udp", "tcp", "tls":
	default:
		return "", "", fmt.Errorf("%w %q: the scheme must be udp, tcp or tls", ErrAddr, addr)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return "", "", fmt.Errorf("%w %q: a port is required", ErrAddr, addr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("%w %q: port must be 1..65535", ErrAddr, addr)
	}
	return u.Scheme, u.Host, nil
}

// Counts returns the messages sent and dropped so far.
func (s *Sender) Counts() (sent, dropped uint64) { return s.sent.Load(), s.dropped.Load() }

// State implements agent.StateSource: /system/syslog/state.
func (s *Sender) State() *gen.Device {
	sent, dropped := s.Counts()
	return &gen.Device{System: &gen.PkiAgentSystem_System{Syslog: &gen.PkiAgentSystem_System_Syslog{
		State: &gen.PkiAgentSystem_System_Syslog_State{
			Server: &s.cfg.Addr, Connected: new(s.connected.Load()), Sent: &sent, Dropped: &dropped,
		}}}}
}

// message is one RFC 5424 message before it is formatted (by the writer,
// so that a sender pays only a channel send).
type message struct {
	time     time.Time
	severity uint8
	msgID    string
	text     string
	sdID     string
	params   [][2]string
}

// enqueue queues m without blocking: a full queue drops it.
func (s *Sender) enqueue(m message) {
	m.time = s.cfg.Clock.Now()
	select {
	case s.queue <- m:
	default:
		s.drop(1)
	}
}

func (s *Sender) format(m message) ([]byte, error) {
	sm := &rfc5424.SyslogMessage{}
	sm.SetPriority(facility*8 + m.severity)
	sm.SetVersion(1)
	// RFC 5424 allows at most 6 fractional digits.
	sm.SetTimestamp(m.time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	sm.SetHostname(s.cfg.Hostname)
	sm.SetAppname(s.cfg.AppName)
	sm.SetProcID(strconv.Itoa(os.Getpid()))
	sm.SetMsgID(m.msgID)
	if m.sdID != "" {
		sm.SetElementID(m.sdID)
		for _, p := range m.params {
			sm.SetParameter(m.sdID, p[0], clip(p[1], 1024))
		}
	}
	sm.SetMessage(clip(m.text, 2048))
	out, err := sm.String()
	if err != nil {
		return nil, err
	}
	if len(out) > maxMessage {
		out = out[:maxMessage]
	}
	return []byte(out), nil
}

// clip bounds a value, cutting at a rune boundary.
func clip(v string, n int) string {
	if len(v) <= n {
		return v
	}
	for n > 0 && v[n]&0xc0 == 0x80 {
		n--
	}
	return v[:n] + "..."
}

// drop counts n dropped messages and logs them at most once a minute.
func (s *Sender) drop(n uint64) {
	s.dropped.Add(n)
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	s.unreported += n
	if !s.lastReport.IsZero() && now.Sub(s.lastReport) < dropReport {
		s.mu.Unlock()
		return
	}
	count := s.unreported
	s.unreported, s.lastReport = 0, now
	s.mu.Unlock()
	s.cfg.Logger.Warn("syslog: receiver down or slow; messages dropped", "server", s.cfg.Addr, "dropped", count, "dropped-total", s.dropped.Load())
}

// Run sends until ctx ends: it follows the bus, checks expiry alerts
// hourly and whenever the certificates change, and writes the queue.
func (s *Sender) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.writeLoop(ctx) })
	if s.sub != nil {
		wg.Go(func() { s.eventLoop(ctx) })
	}
	wg.Wait()
	return nil
}

// writeLoop writes the queue to the receiver, reconnecting with a backoff.
func (s *Sender) writeLoop(ctx context.Context) {
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	backoff := minBackoff
	for {
		if conn == nil {
			c, err := s.dial(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.cfg.Logger.Debug("syslog: cannot reach the receiver", "server", s.cfg.Addr, "err", err, "retry-in", backoff)
				if !s.sleep(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			conn, backoff = c, minBackoff
			s.connected.Store(true)
		}
		select {
		case <-ctx.Done():
			return
		case m := <-s.queue:
			b, err := s.format(m)
			if err != nil {
				s.cfg.Logger.Error("syslog: a message could not be formatted; dropped", "msgid", m.msgID, "err", err)
				s.drop(1)
				continue
			}
			// A socket deadline reads the wall clock.
			conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := conn.Write(s.frame(b)); err != nil {
				s.drop(1)
				s.cfg.Logger.Debug("syslog: write failed; reconnecting", "server", s.cfg.Addr, "err", err)
				conn.Close()
				conn = nil
				s.connected.Store(false)
				continue
			}
			s.sent.Add(1)
		}
	}
}

// frame is b as the transport carries it: a datagram, or octet counting
// (RFC 6587 3.4.1, RFC 5425 4.3).
func (s *Sender) frame(b []byte) []byte {
	if s.network == "udp" {
		return b
	}
	return append([]byte(strconv.Itoa(len(b))+" "), b...)
}

func (s *Sender) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	switch s.network {
	case "tls":
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.cfg.TLS != nil {
			cfg = s.cfg.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(s.host)
		}
		return (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", s.host)
	default:
		return d.DialContext(ctx, s.network, s.host)
	}
}

func (s *Sender) sleep(ctx context.Context, d time.Duration) bool {
	t := s.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}
