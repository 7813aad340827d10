package tpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// SpecSim names the in-process TPM simulator in Open.
const SpecSim = "sim"

// Open connects to the TPM named by spec, as the --tpm flag names it:
//
//   - "sim": the in-process reference simulator of go-tpm-tools (needs cgo).
//     It is a process-wide singleton: every Open("sim") shares it, and it
//     stops when the last one is closed. Its seeds are fixed so that keys
//     created under it load again after a restart of the agent; that makes
//     it a lab tool with no security at all.
//   - "tcp://HOST:PORT": a TPM speaking the simulator's TCP protocol on its
//     command port, such as swtpm started with
//     "--flags not-need-init,startup-clear" (the control port, PORT+1, is not
//     used).
//   - an absolute path such as /dev/tpmrm0 (prefer the kernel resource
//     manager over /dev/tpm0).
//
// The returned transport serializes commands, so it may be shared.
func Open(spec string) (transport.TPMCloser, error) {
	switch {
	case spec == SpecSim:
		return openSim()
	case strings.HasPrefix(spec, "tcp://"):
		return openTCP(strings.TrimPrefix(spec, "tcp://"))
	case strings.HasPrefix(spec, "/"):
		t, err := linuxtpm.Open(spec)
		if err != nil {
			return nil, fmt.Errorf("open TPM device %s: %w", spec, err)
		}
		return &locked{tpm: t}, nil
	case spec == "" || spec == "none":
		return nil, errors.New("open TPM: no TPM configured (--tpm none)")
	}
	return nil, fmt.Errorf("open TPM %q: not sim, tcp://HOST:PORT or a device path such as /dev/tpmrm0", spec)
}

// locked serializes commands on a transport: a command and its response
// must not interleave with another's.
type locked struct {
	mu  sync.Mutex
	tpm transport.TPMCloser
}

func (l *locked) Send(cmd []byte) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tpm.Send(cmd)
}

func (l *locked) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tpm.Close()
}

// simSeed fixes the simulator's hierarchy seeds (see Open).
const simSeed = 0x706b692d6167656e // "pki-agen"

// The simulator singleton: go-tpm-tools lets one Simulator exist at a time
// and blocks a second Get until the first is closed, so Open shares one.
var sim struct {
	mu   sync.Mutex // guards refs and s, and serializes commands
	refs int
	s    *simulator.Simulator
}

type simHandle struct {
	once   sync.Once
	closed bool // under sim.mu
}

func openSim() (transport.TPMCloser, error) {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	if sim.s == nil {
		s, err := simulator.GetWithFixedSeedInsecure(simSeed)
		if err != nil {
			return nil, fmt.Errorf("start TPM simulator: %w", err)
		}
		sim.s = s
	}
	sim.refs++
	return &simHandle{}, nil
}

func (h *simHandle) Send(cmd []byte) ([]byte, error) {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	if h.closed || sim.s == nil {
		return nil, errors.New("TPM simulator: handle is closed")
	}
	if _, err := sim.s.Write(cmd); err != nil {
		return nil, fmt.Errorf("TPM simulator: %w", err)
	}
	var rsp bytes.Buffer
	if _, err := io.Copy(&rsp, sim.s); err != nil {
		return nil, fmt.Errorf("TPM simulator: read response: %w", err)
	}
	return rsp.Bytes(), nil
}

func (h *simHandle) Close() error {
	var err error
	h.once.Do(func() {
		sim.mu.Lock()
		defer sim.mu.Unlock()
		h.closed = true
		sim.refs--
		if sim.refs == 0 && sim.s != nil {
			err = sim.s.Close()
			sim.s = nil
		}
	})
	return err
}

// TCP protocol of the reference simulator (TpmTcpProtocol.h), which swtpm
// speaks too.
const (
	tcpSendCommand = 8
	maxResponse    = 1 << 20
	// tcpTimeout bounds one command; RSA key generation on a slow TPM can
	// take many seconds.
	tcpTimeout = 2 * time.Minute
)

// tcpTPM reads whole frames (io.ReadFull) and bounds every command with a
// deadline, so a stalled TPM server fails a command instead of hanging it.
// After an I/O error the stream is out of step, so the connection is
// closed and every later command fails: reopen the TPM.
type tcpTPM struct {
	conn net.Conn

	mu     sync.Mutex // serializes commands; guards broken
	broken error
}

func openTCP(hostport string) (transport.TPMCloser, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("open TPM tcp://%s: %w", hostport, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("open TPM tcp://%s: bad port %q", hostport, port)
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("open TPM tcp://%s: %w", hostport, err)
	}
	t := &tcpTPM{conn: conn}
	// A TPM started without startup-clear needs TPM2_Startup; one that is
	// already started answers TPM_RC_INITIALIZE, which is fine.
	if _, err := (tpm2.Startup{StartupType: tpm2.TPMSUClear}).Execute(t); err != nil && !errors.Is(err, tpm2.TPMRCInitialize) {
		conn.Close()
		return nil, fmt.Errorf("open TPM tcp://%s: TPM2_Startup: %w", hostport, err)
	}
	return t, nil
}

func (t *tcpTPM) Send(cmd []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.broken != nil {
		return nil, fmt.Errorf("TPM tcp: connection unusable after an earlier error: %w", t.broken)
	}
	rsp, err := t.roundTrip(cmd)
	if err != nil {
		t.broken = err
		t.conn.Close()
	}
	return rsp, err
}

func (t *tcpTPM) roundTrip(cmd []byte) ([]byte, error) {
	if err := t.conn.SetDeadline(time.Now().Add(tcpTimeout)); err != nil {
		return nil, fmt.Errorf("TPM tcp: %w", err)
	}
	hdr := make([]byte, 9, 9+len(cmd))
	binary.BigEndian.PutUint32(hdr[0:], tcpSendCommand)
	hdr[4] = 0 // locality
	binary.BigEndian.PutUint32(hdr[5:], uint32(len(cmd)))
	if _, err := t.conn.Write(append(hdr, cmd...)); err != nil {
		return nil, fmt.Errorf("TPM tcp: send command: %w", err)
	}
	var n [4]byte
	if _, err := io.ReadFull(t.conn, n[:]); err != nil {
		return nil, fmt.Errorf("TPM tcp: read response size: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size == 0 || size > maxResponse {
		return nil, fmt.Errorf("TPM tcp: response size %d out of range", size)
	}
	rsp := make([]byte, size)
	if _, err := io.ReadFull(t.conn, rsp); err != nil {
		return nil, fmt.Errorf("TPM tcp: read response: %w", err)
	}
	if _, err := io.ReadFull(t.conn, n[:]); err != nil {
		return nil, fmt.Errorf("TPM tcp: read response trailer: %w", err)
	}
	if code := binary.BigEndian.Uint32(n[:]); code != 0 {
		return nil, fmt.Errorf("TPM tcp: server error %d", code)
	}
	return rsp, nil
}

// Close closes the connection; a command in flight fails at once.
func (t *tcpTPM) Close() error {
	return t.conn.Close()
}
