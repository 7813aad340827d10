package crl

import (
	"bytes"
	"encoding/binary"
	"math/big"
)

// MaxSerialLen is the longest serial number (in octets, without the DER
// sign octet) a CRL may list. RFC 5280 allows 20; longer ones are refused
// as malformed rather than silently dropped.
const MaxSerialLen = 64

// SerialSet is an immutable set of non-negative serial numbers stored
// compactly: one sorted arena of fixed-width records per serial length, so
// a lookup is a binary search with no allocation and the memory is the
// serial bytes themselves. It is safe for concurrent use.
type SerialSet struct {
	zero    bool     // serial 0 is listed
	buckets []bucket // by increasing width
}

// bucket holds sorted, distinct serials of exactly width octets each.
type bucket struct {
	width int
	data  []byte
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
		if b.width != len(key) {
			continue
		}
		lo, hi := 0, b.count()
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			switch bytes.Compare(b.data[m*b.width:(m+1)*b.width], key) {
			case 0:
				return true
			case -1:
				lo = m + 1
			default:
				hi = m
			}
		}
		return false
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

// finish sorts each bucket (unless it was filled in order) and drops
// duplicate serials.
func (b *bucket) finish(sorted bool) {
	if !sorted {
		radixSort(b.data, b.width, 0)
	}
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
// the recursion's counters).
func radixSort(data []byte, w, d int) {
	for {
		n := len(data) / w
		if n >= 1<<16 && w-d >= 2 {
			if radixSort16(data, w, d) {
				return
			}
			d += 2 // all records share these two octets
			continue
		}
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

// radixSort16 is one American flag pass on a 16-bit digit, for large
// inputs: it halves the scattered passes over memory. It reports false,
// doing nothing, when every record has the same digit.
func radixSort16(data []byte, w, d int) bool {
	n := len(data) / w
	count := make([]int32, 1<<16)
	for i := 0; i < n; i++ {
		count[binary.BigEndian.Uint16(data[i*w+d:])]++
	}
	if int(count[binary.BigEndian.Uint16(data[d:])]) == n {
		return false
	}
	next := make([]int32, 1<<16)
	sum := int32(0)
	for v := range count {
		next[v] = sum
		sum += count[v]
	}
	end := int32(0)
	for v := range count {
		end += count[v]
		for next[v] < end {
			i := int(next[v])
			x := binary.BigEndian.Uint16(data[i*w+d:])
			if int(x) == v {
				next[v]++
				continue
			}
			j := int(next[x])
			next[x]++
			swapRecords(data[i*w:(i+1)*w], data[j*w:(j+1)*w])
		}
	}
	start := 0
	for v := range count {
		c := int(count[v])
		if c > 1 {
			radixSort(data[start*w:(start+c)*w], w, d+2)
		}
		start += c
	}
	return true
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
