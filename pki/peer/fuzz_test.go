package peer

import (
	"testing"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// FuzzValidate feeds arbitrary peer input: it must never panic, never
// accept anything but a chain to the trusted CA, and never both refuse
// with an error and give a verdict.
func FuzzValidate(f *testing.F) {
	s := newSet(f)
	f.Add(s.leaf(f, s.inter, "peer-a", testpki.Options{}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := s.v.Validate(in, "peer-a", s.anchors, t0)
		if err != nil {
			if v.Result != "" {
				t.Fatalf("error %v with verdict %+v", err, v)
			}
			return
		}
		switch v.Result {
		case Valid:
			if len(v.Path) < 2 || v.Path[len(v.Path)-1] != s.root.Cert && !v.Path[len(v.Path)-1].Equal(s.root.Cert) {
				t.Fatalf("accepted a path not ending in the trusted root")
			}
		case Expired, Revoked, Invalid:
			if v.Reason == "" {
				t.Fatal("refusal without a reason")
			}
		default:
			t.Fatalf("result %q", v.Result)
		}
	})
}
