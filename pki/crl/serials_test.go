package crl

import (
	"bytes"
	"encoding/binary"
	"math/big"
	"slices"
	"testing"
)

// TestPrefixTable checks lookups through the prefix table against a
// plain set, for the serial patterns CAs use and for ones built to defeat
// the table (a long shared prefix, clusters, a skewed spread).
func TestPrefixTable(t *testing.T) {
	rng := newXorshift(42)
	random := func(w int) []byte { b := make([]byte, w); rng.fill(b); b[0] |= 1; return b }
	be := func(w int, v uint64) []byte {
		b := make([]byte, w)
		binary.BigEndian.PutUint64(b[w-8:], v)
		b[0] |= 0x80
		return b
	}
	for _, tc := range []struct {
		name string
		w    int
		key  func(i int) []byte
	}{
		{"random 16 octets", 16, func(int) []byte { return random(16) }},
		{"random 9 octets", 9, func(int) []byte { return random(9) }},
		{"random 3 octets", 3, func(int) []byte { return random(3) }},
		{"sequential", 8, func(i int) []byte { return be(8, uint64(i)) }},
		{"sequential after a 12-octet prefix", 20, func(i int) []byte { return be(20, uint64(i)*3) }},
		{"two clusters", 16, func(i int) []byte { k := random(16); k[0] = byte(0x10 + 0xe0*(i&1)); k[1], k[2] = 0, 0; return k }},
		{"skewed", 8, func(i int) []byte { return be(8, uint64(i)*uint64(i)*uint64(i)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{1, 63, 64, 65, 1000, 50_000} {
				var data []byte
				want := map[string]bool{}
				for i := 0; i < n; i++ {
					k := tc.key(i)
					data = append(data, k...)
					want[string(k)] = true
				}
				b := bucket{width: tc.w, data: data}
				b.finish(false)
				if b.count() != len(want) {
					t.Fatalf("n=%d: %d records, want %d", n, b.count(), len(want))
				}
				if n >= 1000 && b.table == nil {
					t.Fatalf("n=%d: no prefix table", n)
				}
				for i := 0; i < b.count(); i++ {
					k := b.at(i)
					if !b.contains(k) {
						t.Fatalf("n=%d: record %d (%x) not found", n, i, k)
					}
					for _, d := range []int64{-1, 1} {
						o := neighbour(k, d)
						if o != nil && b.contains(o) != want[string(o)] {
							t.Fatalf("n=%d: %x found %v, want %v", n, o, !want[string(o)], want[string(o)])
						}
					}
				}
				for i := 0; i < 1000; i++ {
					k := random(tc.w)
					if b.contains(k) != want[string(k)] {
						t.Fatalf("n=%d: random %x found %v", n, k, !want[string(k)])
					}
				}
				// Keys below and above every record, or beside the shared prefix.
				for _, k := range [][]byte{bytes.Repeat([]byte{0}, tc.w), bytes.Repeat([]byte{0xff}, tc.w), neighbour(b.at(0), -1), neighbour(b.at(b.count()-1), 1)} {
					if k != nil && b.contains(k) != want[string(k)] {
						t.Fatalf("n=%d: edge %x found %v", n, k, !want[string(k)])
					}
				}
			}
		})
	}
}

// neighbour is k+d at the same width, nil when it overflows.
func neighbour(k []byte, d int64) []byte {
	v := new(big.Int).Add(new(big.Int).SetBytes(k), big.NewInt(d))
	if v.Sign() < 0 || (v.BitLen()+7)/8 > len(k) {
		return nil
	}
	return v.FillBytes(make([]byte, len(k)))
}

func TestSerialSetContainsWidths(t *testing.T) {
	var data []byte
	for i := 0; i < 5000; i++ {
		data = binary.BigEndian.AppendUint32(data, uint32(0x01000000+i*7))
	}
	b := bucket{width: 4, data: slices.Clone(data)}
	b.finish(true)
	s := &SerialSet{buckets: []bucket{b}}
	for i := 0; i < 5000*7; i++ {
		v := big.NewInt(int64(0x01000000 + i))
		if s.Contains(v) != (i%7 == 0) {
			t.Fatalf("%x: %v", v, s.Contains(v))
		}
	}
}
