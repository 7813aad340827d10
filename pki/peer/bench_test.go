package peer

import (
	"testing"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// BenchmarkValidate measures full validations of a two-tier ECDSA chain
// (parse, path to the root, CRL lookups, CN); 1e9/ns-per-op is the number
// of peer validations per second on one core.
func BenchmarkValidate(b *testing.B) {
	s := newSet(b)
	in := s.leaf(b, s.inter, "peer-a", testpki.Options{})
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := s.v.Validate(in, "peer-a", s.anchors, t0); v.Result != Valid {
			b.Fatal(v.Reason)
		}
	}
}

// BenchmarkValidateParallel is the same on every core.
func BenchmarkValidateParallel(b *testing.B) {
	s := newSet(b)
	in := s.leaf(b, s.inter, "peer-a", testpki.Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, _ := s.v.Validate(in, "peer-a", s.anchors, t0); v.Result != Valid {
				b.Error(v.Reason)
				return
			}
		}
	})
}

// BenchmarkValidateCachedRevoked is a known revoked certificate presented
// again: answered from the cache.
func BenchmarkValidateCachedRevoked(b *testing.B) {
	s := newSet(b)
	c := testpki.Must(s.g.Issue(s.inter, testpki.Options{CN: "peer-a"}))
	s.idx.Add(s.inter.Cert.RawSubject, c.Cert.SerialNumber)
	in := testpki.PEM(c, s.inter)
	s.v.Validate(in, "peer-a", s.anchors, t0)
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := s.v.Validate(in, "peer-a", s.anchors, t0); !v.Cached {
			b.Fatal("not cached")
		}
	}
}
