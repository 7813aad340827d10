package crl

import (
	"bytes"
	"encoding/binary"
	"math/big"
	"math/bits"
)

// MaxSerialLen is the longest serial number (in octets, without the DER
// sign octet) a CRL may list. RFC 5280 allows 20; longer ones are refused
// as malformed rather than silently dropped.
const MaxSerialLen = 64

// SerialSet is an immutable set of non-negative serial numbers stored
// compactly: one sorted arena of fixed-width records per serial length,
// with a prefix table per arena (see bucket.index) so a lookup reads about
// two cache lines and allocates nothing. The memory is the serial bytes
// plus an eighth of it for the tables. It is safe for concurrent use.
type SerialSet struct {
	zero    bool     // serial 0 is listed
	buckets []bucket // by increasing width
}

// bucket holds sorted, distinct serials of exactly width octets each.
type bucket struct {
	width int
	data  []byte
	// table[p] is the first record whose prefix (the bits bits after the
	// skip bits every record shares) is >= p; len(table) is 1<<bits + 1.
	// Nil for small buckets, which are binary searched.
	table []uint32
	skip  int
	bits  int
}

// Prefix tables: about tableLoad records per slot, for buckets of at least
// minTableRecords records.
const (
	tableLoad       = 2
	minTableRecords = 64
	maxTableBits    = 24
)

// index builds the prefix table of a sorted, distinct bucket. The prefix
// starts after the longest bit prefix shared by the first and last record
// (hence by all), so sequential serials spread as well as random ones.
func (b *bucket) index() {
	n := b.count()
	b.table, b.skip, b.bits = nil, 0, 0
	if n < minTableRecords || n > 1<<32-1 {
		return
	}
	first, last := b.at(0), b.at(n-1)
	for b.skip < 8*b.width && bitAt(first, b.skip) == bitAt(last, b.skip) {
		b.skip++
	}
	b.bits = min(bits.Len(uint(n/tableLoad))-1, maxTableBits, 8*b.width-b.skip)
	if b.bits <= 0 {
		b.bits = 0
		return
	}
	slots := 1 << b.bits
	b.table = make([]uint32, slots+1)
	p := 0 // next slot to fill
	for i := 0; i < n; i++ {
		for q := int(b.prefix(b.at(i))); p <= q; p++ {
			b.table[p] = uint32(i)
		}
	}
	for ; p <= slots; p++ {
		b.table[p] = uint32(n)
	}
}

func bitAt(key []byte, i int) byte { return key[i>>3] >> (7 - i&7) & 1 }

// prefix is the b.bits bits of key (b.width octets) after b.skip bits.
func (b *bucket) prefix(key []byte) uint32 {
	o := b.skip >> 3
	var v uint64
	if len(key)-o >= 8 {
		v = binary.BigEndian.Uint64(key[o:])
	} else {
		for i, c := range key[o:] {
			v |= uint64(c) << (56 - 8*i)
		}
	}
	return uint32(v << (b.skip & 7) >> (64 - b.bits))
}

// contains looks up a key of b.width octets.
func (b *bucket) contains(key []byte) bool {
	lo, hi := 0, b.count()
	if b.table != nil {
		// Records outside the shared prefix are not in the bucket.
		first := b.at(0)
		o := b.skip >> 3
		if !bytes.Equal(key[:o], first[:o]) || (b.skip&7 != 0 && (key[o]^first[o])>>(8-b.skip&7) != 0) {
			return false
		}
		p := b.prefix(key)
		lo, hi = int(b.table[p]), int(b.table[p+1])
	}
	w := b.width
	for hi-lo > 4 {
		m := int(uint(lo+hi) >> 1)
		switch bytes.Compare(b.data[m*w:(m+1)*w], key) {
		case 0:
			return true
		case -1:
			lo = m + 1
		default:
			hi = m
		}
	}
	for i := lo; i < hi; i++ {
		if bytes.Equal(b.data[i*w:(i+1)*w], key) {
			return true
		}
	}
	return false
}

func (b *bucket) count() int { return len(b.data) / b.width }

func (b *bucket) at(i int) []byte { return b.data[i*b.width : (i+1)*b.width] }

// Len is the number of distinct serials in the set.
func (s *SerialSet) Len() int {
	if s == nil {
		return 0
	}
	n := 0
	if s.zero {
		n = 1
	}
	for i := range s.buckets {
		n += s.buckets[i].count()
	}
	return n
}

// Bytes is the memory held by the serial arenas.
func (s *SerialSet) Bytes() int {
	if s == nil {
		return 0
	}
	n := 0
	for i := range s.buckets {
		n += len(s.buckets[i].data)
	}
	return n
}

// Contains reports whether serial is in the set. It does not allocate.
// Negative serial numbers are never listed (see Parse).
func (s *SerialSet) Contains(serial *big.Int) bool {
	if s == nil || serial == nil || serial.Sign() < 0 {
		return false
	}
	w := (serial.BitLen() + 7) / 8
	if w == 0 {
		return s.zero
	}
	if w > MaxSerialLen {
		return false
	}
	var buf [MaxSerialLen]byte
	key := serial.FillBytes(buf[:w])
	return s.containsBytes(key)
}

// containsBytes looks up a minimal big-endian magnitude.
func (s *SerialSet) containsBytes(key []byte) bool {
	if len(key) == 0 {
		return s.zero
	}
	for i := range s.buckets {
		b := &s.buckets[i]
		if b.width == len(key) {
			return b.contains(key)
		}
	}
	return false
}

// diffCounts returns how many serials of next are not in prev (added) and
// how many of prev are not in next (removed), by merging the sorted arenas.
func diffCounts(prev, next *SerialSet) (added, removed int) {
	if prev == nil {
		return next.Len(), 0
	}
	if next == nil {
		return 0, prev.Len()
	}
	if next.zero && !prev.zero {
		added++
	}
	if prev.zero && !next.zero {
		removed++
	}
	i, j := 0, 0
	for i < len(prev.buckets) || j < len(next.buckets) {
		switch {
		case j == len(next.buckets) || (i < len(prev.buckets) && prev.buckets[i].width < next.buckets[j].width):
			removed += prev.buckets[i].count()
			i++
		case i == len(prev.buckets) || next.buckets[j].width < prev.buckets[i].width:
			added += next.buckets[j].count()
			j++
		default:
			a, r := diffBucket(&prev.buckets[i], &next.buckets[j])
			added += a
			removed += r
			i++
			j++
		}
	}
	return added, removed
}

func diffBucket(p, n *bucket) (added, removed int) {
	pi, ni, pc, nc := 0, 0, p.count(), n.count()
	for pi < pc && ni < nc {
		switch bytes.Compare(p.at(pi), n.at(ni)) {
		case 0:
			pi++
			ni++
		case -1:
			removed++
			pi++
		default:
			added++
			ni++
		}
	}
	return added + nc - ni, removed + pc - pi
}

// finish sorts each bucket (unless it was filled in order), drops
// duplicate serials and builds the prefix table.
func (b *bucket) finish(sorted bool) {
	if !sorted {
		radixSort(b.data, b.width, 0)
	}
	defer b.index()
	// Remove duplicates in place.
	n := b.count()
	if n < 2 {
		return
	}
	w := b.width
	out := 1
	for i := 1; i < n; i++ {
		cur := b.data[i*w : (i+1)*w]
		if bytes.Equal(cur, b.data[(out-1)*w:out*w]) {
			continue
		}
		if out != i {
			copy(b.data[out*w:(out+1)*w], cur)
		}
		out++
	}
	b.data = b.data[:out*w]
}

// radixSort sorts the fixed-width records of data in place by their bytes
// from offset d on (an MSD "American flag" sort: no extra memory beyond
// the recursion's counters). One octet per pass: its 256 write positions
// stay in cache, and after the first pass over a large arena each part
// fits in L2 (a 16-bit digit made three times the cache misses).
func radixSort(data []byte, w, d int) {
	for {
		n := len(data) / w
		if n < 2 || d >= w {
			return
		}
		if n <= 32 {
			insertionSort(data, w, d)
			return
		}
		var count [256]int
		for i := 0; i < n; i++ {
			count[data[i*w+d]]++
		}
		if count[data[d]] == n { // one bucket: next digit
			d++
			continue
		}
		var start, next [256]int
		sum := 0
		for v := 0; v < 256; v++ {
			start[v] = sum
			next[v] = sum
			sum += count[v]
		}
		for v := 0; v < 256; v++ {
			end := start[v] + count[v]
			for next[v] < end {
				i := next[v]
				x := int(data[i*w+d])
				if x == v {
					next[v]++
					continue
				}
				j := next[x]
				next[x]++
				swapRecords(data[i*w:(i+1)*w], data[j*w:(j+1)*w])
			}
		}
		for v := 0; v < 256; v++ {
			if count[v] > 1 {
				radixSort(data[start[v]*w:(start[v]+count[v])*w], w, d+1)
			}
		}
		return
	}
}

// swapRecords swaps two equal-length records eight octets at a time
// (cheaper than three memmove calls for 16-20 octet serials).
func swapRecords(a, b []byte) {
	b = b[:len(a)]
	for len(a) >= 8 {
		x, y := binary.LittleEndian.Uint64(a), binary.LittleEndian.Uint64(b)
		binary.LittleEndian.PutUint64(a, y)
		binary.LittleEndian.PutUint64(b, x)
		a, b = a[8:], b[8:]
	}
	for i := range a {
		a[i], b[i] = b[i], a[i]
	}
}

func insertionSort(data []byte, w, d int) {
	n := len(data) / w
	var tmp [MaxSerialLen]byte
	rec := tmp[:w]
	for i := 1; i < n; i++ {
		cur := data[i*w : (i+1)*w]
		j := i
		for j > 0 && lessFrom(cur, data[(j-1)*w:j*w], d) {
			j--
		}
		if j == i {
			continue
		}
		copy(rec, cur)
		copy(data[(j+1)*w:(i+1)*w], data[j*w:i*w])
		copy(data[j*w:(j+1)*w], rec)
	}
}

// lessFrom compares two records from octet d on, eight octets at a time.
func lessFrom(a, b []byte, d int) bool {
	for ; d+8 <= len(a); d += 8 {
		x, y := binary.BigEndian.Uint64(a[d:]), binary.BigEndian.Uint64(b[d:])
		if x != y {
			return x < y
		}
	}
	return bytes.Compare(a[d:], b[d:len(a)]) < 0
}
