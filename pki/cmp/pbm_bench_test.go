package cmp

import "testing"

// BenchmarkPBM is the cost of one MAC with the parameters we send.
func BenchmarkPBM(b *testing.B) {
	p, err := newPBMParams()
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1500)
	for b.Loop() {
		p.compute([]byte("secret"), data)
	}
}
