package netconf

import (
	"testing"

	jnc "github.com/Juniper/go-netconf/netconf"
)

// BenchmarkRoundTripChunked measures rpc -> <ok/> round trips over one
// base:1.1 session with the trivial handler.
func BenchmarkRoundTripChunked(b *testing.B) {
	ts := startServer(b, nil)
	c := dial11(b, ts.addr)
	const req = `<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get/></rpc>`
	for b.Loop() {
		c.write(req)
		if _, err := c.read(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rpc/s")
}

// BenchmarkRoundTripGoNetconf measures the same with the go-netconf v0.1.1
// client (base:1.0 end-of-message framing).
func BenchmarkRoundTripGoNetconf(b *testing.B) {
	ts := startServer(b, nil)
	s, err := jnc.DialSSH(ts.addr, jnc.SSHConfigPassword("alice", "secret"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, err := s.Exec(jnc.RawMethod("<get/>")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rpc/s")
}
