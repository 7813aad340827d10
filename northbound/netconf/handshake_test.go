package netconf

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// dialFrom dials addr from the local address ip.
func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// One address holds at most half of the connections in their SSH
// handshake (MaxHandshakes): with none of them failed, a further one from
// it is closed before the key exchange, while another address still logs
// in.
func TestHandshakesBoundedPerAddress(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxHandshakes = 8 }) // 4 per address
	var held []net.Conn
	for range 4 {
		held = append(held, dialFrom(t, "127.0.0.2", ts.addr))
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Each held connection has been accepted once its server banner
	// arrives.
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 8)); err != nil {
			t.Fatalf("held connection: %v", err)
		}
	}
	extra := dialFrom(t, "127.0.0.2", ts.addr)
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 8)); err == nil {
		t.Fatalf("a fifth handshake from one address was served (%d bytes)", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a fifth handshake from one address was left open")
	}
	c, err := ssh.Dial("tcp", ts.addr, passwordConfig("alice", "secret"))
	if err != nil {
		t.Fatalf("login from another address: %v", err)
	}
	c.Close()
}

// slowRefusal is fakeAuth whose refusals are answered only when ctx ends,
// as auth.Users delays them, after marking the connection as failed.
type slowRefusal struct {
	fakeAuth
	refused chan struct{}
}

func (a slowRefusal) Authenticate(ctx context.Context, user, password string, remote net.Addr) (string, error) {
	role, err := a.fakeAuth.Authenticate(ctx, user, password, remote)
	if err != nil {
		AuthFailed(ctx)()
		a.refused <- struct{}{}
		<-ctx.Done()
	}
	return role, err
}

// When the handshakes of an address are all taken by connections that
// failed authentication and wait for their refusal, a new connection from
// that same address evicts the oldest of them and logs in; the evicted
// client is answered at once (closed), not after its delay.
func TestFailedHandshakeEvictedForANewOne(t *testing.T) {
	refused := make(chan struct{}, 16)
	ts := startServer(t, func(c *Config) {
		c.MaxHandshakes = 8 // 4 per address
		c.Authenticator = slowRefusal{refused: refused}
	})
	cfg := func(pw string) *ssh.ClientConfig {
		c := passwordConfig("alice", pw)
		c.Timeout = 0
		return c
	}
	var wg sync.WaitGroup
	ended := make(chan time.Time, 4)
	for range 4 {
		c := dialFrom(t, "127.0.0.1", ts.addr)
		defer c.Close()
		wg.Go(func() {
			_, _, _, err := ssh.NewClientConn(c, ts.addr, cfg("guess"))
			if err == nil {
				t.Error("a wrong password logged in")
			}
			ended <- time.Now()
		})
		select {
		case <-refused:
		case <-time.After(5 * time.Second):
			t.Fatal("a guess was not refused")
		}
	}
	start := time.Now()
	c, err := ssh.Dial("tcp", ts.addr, cfg("secret"))
	if err != nil {
		t.Fatalf("login from the address whose handshakes are all failed: %v", err)
	}
	c.Close()
	select {
	case at := <-ended:
		if d := at.Sub(start); d > 2*time.Second {
			t.Fatalf("the evicted guesser was answered after %v", d)
		}
	case <-time.After(3 * time.Second): // HelloTimeout is 5 s
		t.Fatal("no failed connection was evicted")
	}
	ts.stop()
	wg.Wait()
}
