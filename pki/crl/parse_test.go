package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

func TestParseMatchesX509(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "parse CA")
	for _, tc := range []struct {
		desc    string
		revoked []*big.Int
	}{
		{desc: "empty", revoked: nil},
		{desc: "one", revoked: serials(7)},
		{desc: "zero serial and wide ones", revoked: []*big.Int{big.NewInt(0), big.NewInt(255), big.NewInt(256), new(big.Int).Lsh(big.NewInt(1), 159)}},
		{desc: "unsorted with duplicates", revoked: serials(9, 3, 1<<40, 3, 2, 1<<20, 9)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			der := mustCRL(t, ca, testpki.CRLOptions{Revoked: tc.revoked, Number: 42})
			c, err := Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			rl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if c.Entries != len(rl.RevokedCertificateEntries) {
				t.Errorf("entries %d, x509 %d", c.Entries, len(rl.RevokedCertificateEntries))
			}
			if c.Number.Cmp(rl.Number) != 0 || !c.ThisUpdate.Equal(rl.ThisUpdate) || !c.NextUpdate.Equal(rl.NextUpdate) {
				t.Errorf("fields differ: number %v/%v this %v/%v next %v/%v", c.Number, rl.Number, c.ThisUpdate, rl.ThisUpdate, c.NextUpdate, rl.NextUpdate)
			}
			if diff := cmp.Diff(rl.RawIssuer, c.RawIssuer); diff != "" {
				t.Errorf("issuer (-x509 +ours):\n%s", diff)
			}
			if c.SignatureAlgorithm != rl.SignatureAlgorithm {
				t.Errorf("signature algorithm %v, x509 %v", c.SignatureAlgorithm, rl.SignatureAlgorithm)
			}
			if diff := cmp.Diff(rl.AuthorityKeyId, c.AuthorityKeyID); diff != "" {
				t.Errorf("AKID (-x509 +ours):\n%s", diff)
			}
			distinct := map[string]bool{}
			for _, e := range rl.RevokedCertificateEntries {
				distinct[e.SerialNumber.String()] = true
				if !c.Serials.Contains(e.SerialNumber) {
					t.Errorf("serial %v not indexed", e.SerialNumber)
				}
			}
			if c.Serials.Len() != len(distinct) {
				t.Errorf("distinct serials %d, want %d", c.Serials.Len(), len(distinct))
			}
			for _, n := range []int64{1, 4, 8, 1 << 30, -3} {
				if !distinct[big.NewInt(n).String()] && c.Serials.Contains(big.NewInt(n)) {
					t.Errorf("serial %d reported revoked", n)
				}
			}
			if _, err := c.Verify(caPool(ca)); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "refuse CA")
	good := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1, 2), Number: 1})
	idp, _ := asn1.Marshal(struct{}{})
	for _, tc := range []struct {
		desc string
		der  []byte
		want error
	}{
		{desc: "delta CRL indicator", der: mustCRL(t, ca, testpki.CRLOptions{Number: 2, ExtraExtensions: []pkixExt{ext(asn1.ObjectIdentifier{2, 5, 29, 27}, true, []byte{2, 1, 1})}}), want: ErrUnhandledExtension},
		{desc: "critical issuing distribution point", der: mustCRL(t, ca, testpki.CRLOptions{Number: 2, ExtraExtensions: []pkixExt{ext(asn1.ObjectIdentifier{2, 5, 29, 28}, true, idp)}}), want: ErrUnhandledExtension},
		{desc: "unknown critical extension", der: mustCRL(t, ca, testpki.CRLOptions{Number: 2, ExtraExtensions: []pkixExt{ext(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, true, []byte{5, 0})}}), want: ErrUnhandledExtension},
		{desc: "trailing data", der: append(slices.Clone(good), 0), want: ErrMalformed},
		{desc: "truncated", der: good[:len(good)-3], want: ErrMalformed},
		{desc: "garbage", der: []byte("0hello"), want: ErrMalformed},
		{desc: "empty", der: nil, want: ErrMalformed},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse(tc.der)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("non-critical issuing distribution point is accepted", func(t *testing.T) {
		der := mustCRL(t, ca, testpki.CRLOptions{Number: 2, ExtraExtensions: []pkixExt{ext(asn1.ObjectIdentifier{2, 5, 29, 28}, false, idp)}})
		if _, err := Parse(der); err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseEntryExtensions(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "entry CA")
	certIssuer, _ := asn1.Marshal([]asn1.RawValue{{Class: 2, Tag: 2, Bytes: []byte("x.example")}})
	mk := func(exts ...pkixExt) []byte {
		e := x509.RevocationListEntry{SerialNumber: big.NewInt(5), RevocationTime: t0, ExtraExtensions: exts}
		if len(exts) == 0 {
			e.ReasonCode = 1
		}
		tmpl := &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: t0, NextUpdate: t0.AddDate(0, 0, 1),
			RevokedCertificateEntries: []x509.RevocationListEntry{e},
		}
		der, err := x509.CreateRevocationList(randReader{}, tmpl, ca.Cert, ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	if c, err := Parse(mk()); err != nil || !c.Serials.Contains(big.NewInt(5)) {
		t.Fatalf("reason code entry: %v", err)
	}
	if _, err := Parse(mk(ext(asn1.ObjectIdentifier{2, 5, 29, 29}, true, certIssuer))); !errors.Is(err, ErrUnhandledExtension) {
		t.Fatalf("indirect entry: %v, want ErrUnhandledExtension", err)
	}
	if _, err := Parse(mk(ext(asn1.ObjectIdentifier{1, 2, 3, 4}, true, []byte{5, 0}))); !errors.Is(err, ErrUnhandledExtension) {
		t.Fatalf("unknown critical entry extension: %v", err)
	}
}

func TestVerify(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "verify CA")
	impostor := testCA(t, g, "verify CA") // same subject, other key
	other := testCA(t, g, "other CA")
	noCRLSign := testpki.Must(g.Root(testpki.Options{CN: "no crlsign CA", KeyUsage: x509.KeyUsageCertSign}))
	rsaCA := testpki.Must(g.Root(testpki.Options{CN: "rsa CA", KeyType: testpki.RSA2048}))
	noKU := testpki.Must(g.Root(testpki.Options{CN: "no key usage CA", NoKeyUsage: true}))
	for _, tc := range []struct {
		desc    string
		signer  *testpki.Cert
		trusted []*testpki.Cert
		want    error
	}{
		{desc: "signed by the trusted CA", signer: ca, trusted: []*testpki.Cert{other, ca}},
		{desc: "same name, two keys: the right one is found", signer: ca, trusted: []*testpki.Cert{impostor, ca}},
		{desc: "RSA CA", signer: rsaCA, trusted: []*testpki.Cert{rsaCA}},
		{desc: "wrong signer with the trusted name", signer: impostor, trusted: []*testpki.Cert{ca}, want: ErrSignature},
		{desc: "issuer not trusted", signer: other, trusted: []*testpki.Cert{ca}, want: ErrUntrustedIssuer},
		{desc: "no trusted CAs", signer: ca, want: ErrUntrustedIssuer},
		{desc: "CA without cRLSign", signer: noCRLSign, trusted: []*testpki.Cert{noCRLSign}, want: ErrSignature},
		{desc: "CA without a key usage extension may sign CRLs", signer: noKU, trusted: []*testpki.Cert{noKU}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			der := buildCRL(t, tc.signer, bigCRLOptions{N: 3, Number: 1})
			c, err := Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Verify(caPool(tc.trusted...))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			if err == nil && got != tc.signer.Cert {
				t.Fatalf("verified by %v, want %v", got.Subject, tc.signer.Cert.Subject)
			}
			// ParseVerified reaches the same verdict.
			pc, pgot, perr := ParseVerified(der, caPool(tc.trusted...))
			if !errors.Is(perr, tc.want) || pgot != got || (perr == nil && pc.Entries != c.Entries) {
				t.Fatalf("ParseVerified: %v by %v, want %v by %v", perr, pgot, err, got)
			}
		})
	}
	t.Run("a CRL that does not parse is reported before its signature", func(t *testing.T) {
		der := mustCRL(t, impostor, testpki.CRLOptions{Revoked: serials(2), Number: 1})
		i := bytes.Index(der, []byte{0x02, 0x01, 0x02}) // the second entry's serial INTEGER
		if i < 0 {
			t.Skip("serial 2 not found in the encoding")
		}
		der[i] = 0x05 // not an INTEGER: the entry does not parse
		if _, _, err := ParseVerified(der, caPool(ca)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseVerified: %v, want ErrMalformed", err)
		}
	})
	t.Run("flipped signature bit", func(t *testing.T) {
		der := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1), Number: 1})
		der[len(der)-5] ^= 1
		c, err := Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(caPool(ca)); !errors.Is(err, ErrSignature) {
			t.Fatalf("Verify: %v, want ErrSignature", err)
		}
	})
}

func TestDecode(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "decode CA")
	der := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1), Number: 1})
	pemCRL := testpki.CRLPEM(der)
	for _, tc := range []struct {
		desc string
		in   []byte
		ok   bool
	}{
		{desc: "DER", in: der, ok: true},
		{desc: "PEM", in: pemCRL, ok: true},
		{desc: "PEM after a certificate", in: append(ca.PEM(), pemCRL...), ok: true},
		{desc: "PEM with leading text", in: append([]byte("junk\n"), pemCRL...), ok: true},
		{desc: "certificate only", in: ca.PEM()},
		{desc: "HTML", in: []byte("<html>404</html>")},
		{desc: "empty", in: nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := Decode(tc.in)
			if tc.ok {
				if err != nil || !slices.Equal(got, der) {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrNotCRL) {
				t.Fatalf("Decode: %v, want ErrNotCRL", err)
			}
		})
	}
}

func TestSerialSetLargeRandom(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "large CA")
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	der := buildCRL(t, ca, bigCRLOptions{N: n, Number: 1})
	c, err := Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(caPool(ca)); err != nil {
		t.Fatal(err)
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if c.Entries != n || c.Serials.Len() != n {
		t.Fatalf("entries %d, distinct %d, want %d", c.Entries, c.Serials.Len(), n)
	}
	for i, e := range rl.RevokedCertificateEntries {
		if !c.Serials.Contains(e.SerialNumber) {
			t.Fatalf("entry %d serial %x not found", i, e.SerialNumber)
		}
		off := new(big.Int).Add(e.SerialNumber, big.NewInt(1))
		if i%97 == 0 && c.Serials.Contains(off) && !slices.ContainsFunc(rl.RevokedCertificateEntries, func(x x509.RevocationListEntry) bool { return x.SerialNumber.Cmp(off) == 0 }) {
			t.Fatalf("serial %x reported revoked", off)
		}
	}
}

func TestContainsDoesNotAllocate(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "alloc CA")
	c, err := Parse(buildCRL(t, ca, bigCRLOptions{N: 1000, Sequential: true, Number: 1}))
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{}
	m.idx.Store(&index{byIssuer: map[string][]*SerialSet{string(c.RawIssuer): {c.Serials}}})
	issuer := slices.Clone(ca.Cert.RawSubject)
	hit, miss := big.NewInt(500), big.NewInt(5000)
	allocs := testing.AllocsPerRun(1000, func() {
		if !m.IsRevoked(issuer, hit) || m.IsRevoked(issuer, miss) {
			t.Fatal("wrong answer")
		}
	})
	if allocs != 0 {
		t.Fatalf("IsRevoked allocates %v times per call", allocs)
	}
}

func TestDiffCounts(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "diff CA")
	set := func(ns ...int64) *SerialSet {
		c, err := Parse(mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(ns...), Number: 1}))
		if err != nil {
			t.Fatal(err)
		}
		return c.Serials
	}
	for _, tc := range []struct {
		desc           string
		prev, next     *SerialSet
		added, removed int
	}{
		{desc: "first list", prev: nil, next: set(1, 2, 3), added: 3},
		{desc: "same", prev: set(1, 2, 3), next: set(3, 2, 1)},
		{desc: "one added one removed", prev: set(1, 2, 3), next: set(2, 3, 4), added: 1, removed: 1},
		{desc: "widths differ", prev: set(0, 1, 300), next: set(1, 70000), added: 1, removed: 2},
		{desc: "emptied", prev: set(5, 6), next: set(), removed: 2},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			a, r := diffCounts(tc.prev, tc.next)
			if a != tc.added || r != tc.removed {
				t.Fatalf("added %d removed %d, want %d %d", a, r, tc.added, tc.removed)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "WR2")
	if got, want := OneLine(ca.Cert.RawSubject), "/O=pki-agent tests/CN=WR2"; got != want {
		t.Fatalf("OneLine = %q, want %q", got, want)
	}
}

func TestRadixSortMatchesSort(t *testing.T) {
	for _, tc := range []struct {
		desc string
		n, w int
		fill func(rng *xorshift, rec []byte)
	}{
		{desc: "short random with duplicates", n: 70_000, w: 2, fill: func(r *xorshift, b []byte) { r.fill(b) }},
		{desc: "shared prefix", n: 70_000, w: 9, fill: func(r *xorshift, b []byte) { r.fill(b); b[0], b[1], b[2] = 1, 2, 3 }},
		{desc: "small", n: 100, w: 20, fill: func(r *xorshift, b []byte) { r.fill(b) }},
		{desc: "skewed", n: 80_000, w: 5, fill: func(r *xorshift, b []byte) { r.fill(b); b[0] &= 1; b[2] = 0 }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			rng := newXorshift(uint64(tc.n))
			data := make([]byte, tc.n*tc.w)
			recs := make([]string, tc.n)
			for i := 0; i < tc.n; i++ {
				tc.fill(rng, data[i*tc.w:(i+1)*tc.w])
				recs[i] = string(data[i*tc.w : (i+1)*tc.w])
			}
			radixSort(data, tc.w, 0)
			slices.Sort(recs)
			for i, r := range recs {
				if string(data[i*tc.w:(i+1)*tc.w]) != r {
					t.Fatalf("record %d differs", i)
				}
			}
		})
	}
}
