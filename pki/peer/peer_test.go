package peer

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/pki/importcheck"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type pkiSet struct {
	g        *testpki.Generator
	root     *testpki.Cert
	inter    *testpki.Cert
	anchors  *Anchors
	idx      *importcheck.MemoryIndex
	v        *Validator
	stranger *testpki.Cert
}

func newSet(t testing.TB) *pkiSet {
	t.Helper()
	g := testpki.New(t0)
	h := testpki.Must(g.Hierarchy(2))
	a, err := NewAnchors(map[string][]*x509.Certificate{"corp": {h[0].Cert}})
	if err != nil {
		t.Fatal(err)
	}
	idx := importcheck.NewMemoryIndex()
	return &pkiSet{g: g, root: h[0], inter: h[1], anchors: a, idx: idx, v: NewValidator(idx, 0),
		stranger: testpki.Must(g.Root(testpki.Options{CN: "stranger CA"}))}
}

func (s *pkiSet) leaf(t testing.TB, issuer *testpki.Cert, cn string, o testpki.Options) []byte {
	t.Helper()
	o.CN = cn
	c := testpki.Must(s.g.Issue(issuer, o))
	return testpki.PEM(c, issuer)
}

func TestValidate(t *testing.T) {
	s := newSet(t)
	revoked := testpki.Must(s.g.Issue(s.inter, testpki.Options{CN: "peer-b"}))
	s.idx.Add(s.inter.Cert.RawSubject, revoked.Cert.SerialNumber)
	for _, tc := range []struct {
		desc   string
		pem    []byte
		id     string
		want   Result
		reason string
	}{
		{desc: "valid", pem: s.leaf(t, s.inter, "peer-a", testpki.Options{}), id: "peer-a", want: Valid},
		{desc: "UUID identifier in another case", pem: s.leaf(t, s.inter, "6f1e0b2a-0c4d-4e8f-9a1b-2c3d4e5f6a7b", testpki.Options{}), id: "6F1E0B2A-0C4D-4E8F-9A1B-2C3D4E5F6A7B", want: Valid},
		{desc: "expired", pem: s.leaf(t, s.inter, "peer-a", testpki.Options{NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.Add(-time.Hour)}), id: "peer-a", want: Expired, reason: "expired at"},
		{desc: "not yet valid", pem: s.leaf(t, s.inter, "peer-a", testpki.Options{NotBefore: t0.Add(time.Hour)}), id: "peer-a", want: Invalid, reason: "not valid before"},
		{desc: "revoked", pem: testpki.PEM(revoked, s.inter), id: "peer-b", want: Revoked, reason: "is revoked by a CRL"},
		{desc: "unknown issuer", pem: s.leaf(t, s.stranger, "peer-a", testpki.Options{}), id: "peer-a", want: Invalid, reason: "does not chain to any trusted-ca-certificate"},
		{desc: "CN mismatch", pem: s.leaf(t, s.inter, "peer-x", testpki.Options{}), id: "peer-a", want: Invalid, reason: `subject CN "peer-x" does not match the peer's identifier "peer-a"`},
		{desc: "intermediate missing", pem: testpki.PEM(testpki.Must(s.g.Issue(s.inter, testpki.Options{CN: "peer-a"}))), id: "peer-a", want: Invalid, reason: "does not chain"},
		{desc: "garbage", pem: []byte("hello"), id: "peer-a", want: Invalid, reason: "does not parse"},
		{desc: "CA certificate for a peer", pem: testpki.PEM(s.inter), id: "testpki tier 2", want: Invalid, reason: "is a CA certificate"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			v, err := s.v.Validate(tc.pem, tc.id, s.anchors, t0)
			if err != nil {
				t.Fatal(err)
			}
			if v.Result != tc.want || !strings.Contains(v.Reason, tc.reason) {
				t.Fatalf("got %s %q, want %s with %q", v.Result, v.Reason, tc.want, tc.reason)
			}
			if tc.want == Valid && (len(v.Path) < 2 || v.TrustedCA != "corp" || v.Reason != "") {
				t.Fatalf("valid verdict %+v", v)
			}
		})
	}
}

func TestValidateRefusesKeyMaterial(t *testing.T) {
	s := newSet(t)
	c := testpki.Must(s.g.Issue(s.inter, testpki.Options{CN: "peer-a"}))
	in := append(testpki.PEM(c), c.KeyPEM()...)
	_, err := s.v.Validate(in, "peer-a", s.anchors, t0)
	if !errors.Is(err, ErrKeyMaterial) {
		t.Fatalf("err = %v", err)
	}
	body := strings.Split(string(c.KeyPEM()), "\n")[1]
	if strings.Contains(err.Error(), body[:20]) {
		t.Fatal("key material echoed")
	}
}

func TestRevokedStaysRevokedThroughTheCache(t *testing.T) {
	s := newSet(t)
	c := testpki.Must(s.g.Issue(s.inter, testpki.Options{CN: "peer-a"}))
	in := testpki.PEM(c, s.inter)
	s.idx.Add(s.inter.Cert.RawSubject, c.Cert.SerialNumber)
	if v, _ := s.v.Validate(in, "peer-a", s.anchors, t0); v.Result != Revoked || v.Cached {
		t.Fatalf("first: %+v", v)
	}
	// A later CRL no longer lists it: the cache still refuses it.
	s.idx.Replace(s.inter.Cert.RawSubject, nil)
	v, _ := s.v.Validate(in, "peer-a", s.anchors, t0)
	if v.Result != Revoked || !v.Cached || !strings.Contains(v.Reason, "known bad certificate") {
		t.Fatalf("second: %+v", v)
	}
}

func TestCacheBounded(t *testing.T) {
	c := NewCache(3)
	fp := func(i byte) [32]byte { return sha256.Sum256([]byte{i}) }
	for i := byte(0); i < 5; i++ {
		c.Put(fp(i), Expired, "x")
	}
	if c.Len() != 3 {
		t.Fatalf("len %d", c.Len())
	}
	if _, ok := c.Get(fp(0)); ok {
		t.Fatal("oldest entry kept")
	}
	if _, ok := c.Get(fp(4)); !ok {
		t.Fatal("newest entry lost")
	}
	c.Put(fp(4), Revoked, "r")
	c.Put(fp(4), Expired, "e")
	if e, _ := c.Get(fp(4)); e.Result != Revoked {
		t.Fatalf("revoked replaced by %s", e.Result)
	}
}

func TestNextAndRecheck(t *testing.T) {
	s := newSet(t)
	c := testpki.Must(s.g.Issue(s.inter, testpki.Options{CN: "peer-a", NotAfter: t0.Add(48 * time.Hour)}))
	good, _ := s.v.Validate(testpki.PEM(c, s.inter), "peer-a", s.anchors, t0)
	bad := Verdict{Result: Invalid, Reason: "CN"}
	for _, tc := range []struct {
		desc   string
		action Action
		seq    []Verdict
		want   Status
	}{
		{desc: "fail-soft failure", action: FailSoft, seq: []Verdict{bad}, want: StatusInvalid},
		{desc: "fail-hard failure severs", action: FailHard, seq: []Verdict{good, bad}, want: StatusSevered},
		{desc: "severed stays severed on another failure", action: FailHard, seq: []Verdict{bad, {Result: Expired, Reason: "e"}}, want: StatusSevered},
		{desc: "a valid certificate lifts severed", action: FailHard, seq: []Verdict{bad, good}, want: StatusValid},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			st := State{Status: StatusUnknown}
			for _, v := range tc.seq {
				st = Next(st, tc.action, v, t0)
			}
			if st.Status != tc.want || st.Failed() != (tc.want != StatusValid) || !st.LastValidated.Equal(t0) {
				t.Fatalf("state %+v", st)
			}
		})
	}
	st := Next(State{}, FailSoft, good, t0)
	if _, bad := s.v.Recheck(st, t0); bad {
		t.Fatal("recheck of a good peer failed")
	}
	if v, bad := s.v.Recheck(st, t0.Add(72*time.Hour)); !bad || v.Result != Expired {
		t.Fatalf("recheck after expiry: %+v", v)
	}
	s.idx.Add(s.inter.Cert.RawSubject, c.Cert.SerialNumber)
	if v, bad := s.v.Recheck(st, t0); !bad || v.Result != Revoked {
		t.Fatalf("recheck after revocation: %+v", v)
	}
	if s.v.Cache().Len() != 1 {
		t.Fatal("revoked peer not cached")
	}
}

// TestCacheObserveAndAll: the observer sees every entry added or changed
// (not a refresh, not a revoked verdict kept), and All, put back in its
// order into an empty cache, rebuilds the same cache.
func TestCacheObserveAndAll(t *testing.T) {
	c := NewCache(3)
	var seen []string
	c.Observe(func(k Known) { seen = append(seen, fmt.Sprintf("%x %s", k.FP[0], k.Result)) })
	fp := func(i byte) [32]byte { return sha256.Sum256([]byte{i}) }
	c.Put(fp(1), Expired, "x")
	c.Put(fp(2), Revoked, "r")
	c.Put(fp(1), Expired, "x")  // a refresh only
	c.Put(fp(2), Expired, "e")  // revoked stays
	c.Put(fp(1), Revoked, "r1") // a change
	c.Put(fp(3), Expired, "y")
	want := []string{
		fmt.Sprintf("%x expired", fp(1)[0]), fmt.Sprintf("%x revoked", fp(2)[0]),
		fmt.Sprintf("%x revoked", fp(1)[0]), fmt.Sprintf("%x expired", fp(3)[0]),
	}
	if d := cmp.Diff(want, seen); d != "" {
		t.Fatalf("observed (-want +got):\n%s", d)
	}
	c2 := NewCache(3)
	for _, k := range c.All() {
		c2.Put(k.FP, k.Result, k.Reason)
	}
	if d := cmp.Diff(c.All(), c2.All()); d != "" {
		t.Fatalf("rebuilt cache (-want +got):\n%s", d)
	}
	c2.Put(fp(4), Expired, "z") // evicts the least recently used: fp(2)
	if _, ok := c2.Get(fp(2)); ok {
		t.Fatal("the rebuilt cache lost its order")
	}
}
