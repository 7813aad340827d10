package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/persist"
)

// fakePEM is a 1 KiB stand-in for a CA certificate's PEM; the datastore
// treats content as an opaque string.
var fakePEM = "-----BEGIN CERTIFICATE-----\n" + stringsRepeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkwYWJjZGVmZ2hpamts\n", 16) + "-----END CERTIFICATE-----\n"

func stringsRepeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func populated(b *testing.B, n int) *gen.Device {
	d := &gen.Device{}
	for i := range n {
		e, err := d.GetOrCreateAuthority().NewTrustedCaCertificate(fmt.Sprintf("ca-%05d", i))
		if err != nil {
			b.Fatal(err)
		}
		e.Content = &fakePEM
	}
	return d
}

// BenchmarkCommitOneLeaf commits a change of one leaf with n trusted CAs
// present, persisted to disk; the cost should not grow with n.
func BenchmarkCommitOneLeaf(b *testing.B) { benchmarkCommit(b, true) }

// BenchmarkCommitInMemory is the same without the fsync, to show the
// datastore's own cost.
func BenchmarkCommitInMemory(b *testing.B) { benchmarkCommit(b, false) }

func benchmarkCommit(b *testing.B, onDisk bool) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			cfg := Config{Initial: populated(b, n), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if onDisk {
				d, err := persist.Open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				if _, _, err := d.Load(); err != nil {
					b.Fatal(err)
				}
				cfg.Persister = NewDiskPersister(d)
			}
			s := New(cfg)
			p := mustPath(b, "/authority/trusted-ca-certificate[name=ca-00005]/validation-mode")
			modes := []string{`"warn"`, `"strict"`}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tx := s.Begin(Running)
				if err := tx.Apply(Edit{Op: OpMerge, Path: p, Value: jsonVal(modes[i%2])}); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Commit(context.Background(), tx, CommitOptions{User: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoad10k measures start-up load of a 10,000-entry running config.
func BenchmarkLoad10k(b *testing.B) {
	dir := b.TempDir()
	d, err := persist.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := EmitJSON(populated(b, 10000))
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Compact(raw); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(raw)), "snapshot-bytes")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, _, err := Load(d); err != nil {
			b.Fatal(err)
		}
	}
}
