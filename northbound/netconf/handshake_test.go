package netconf

import (
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// One address holds at most a quarter of the connections in their SSH
// handshake: a further one from it is closed before the key exchange,
// while another address still logs in.
func TestHandshakesBoundedPerAddress(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxSessions = 8 }) // 16 connections, 4 per address
	var held []net.Conn
	for range 4 {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
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
	extra, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
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
