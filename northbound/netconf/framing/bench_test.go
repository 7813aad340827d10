package framing

import (
	"bytes"
	"io"
	"testing"
)

// benchMessage is a 4 KiB rpc-like message.
var benchMessage = bytes.Repeat([]byte("<leaf>value</leaf>\n"), 4096/19)

func benchStream(b *testing.B, chunked bool, n int) []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if chunked {
		w.SetChunked()
	}
	for range n {
		if err := w.WriteMessage(benchMessage); err != nil {
			b.Fatal(err)
		}
	}
	return buf.Bytes()
}

func benchmarkRead(b *testing.B, chunked bool) {
	const perStream = 256
	stream := benchStream(b, chunked, perStream)
	b.SetBytes(int64(len(benchMessage)))
	b.ResetTimer()
	var r *Reader
	for i := range b.N {
		if i%perStream == 0 {
			r = NewReader(bytes.NewReader(stream), 0)
			if chunked {
				r.SetChunked()
			}
		}
		if _, err := r.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadEOM(b *testing.B)     { benchmarkRead(b, false) }
func BenchmarkReadChunked(b *testing.B) { benchmarkRead(b, true) }

func benchmarkWrite(b *testing.B, chunked bool) {
	w := NewWriter(io.Discard)
	if chunked {
		w.SetChunked()
	}
	b.SetBytes(int64(len(benchMessage)))
	for b.Loop() {
		if err := w.WriteMessage(benchMessage); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteEOM(b *testing.B)     { benchmarkWrite(b, false) }
func BenchmarkWriteChunked(b *testing.B) { benchmarkWrite(b, true) }
