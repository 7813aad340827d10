package pki

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/pki/keystore/file"
	"github.com/pkiagent/pkiagent/telemetry"
)

// BenchmarkCommitRouterLeaf commits one leaf of one router through the
// store (persisted) and the engine with n other routers configured, each
// with peer-validation and a peer; the cost should not grow with n.
func BenchmarkCommitRouterLeaf(b *testing.B) {
	for _, n := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("routers=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			fc := clock.NewFake(t0)
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			d, err := persist.Open(filepath.Join(dir, "state"))
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			if _, _, err := d.Load(); err != nil {
				b.Fatal(err)
			}
			bus := telemetry.NewBus()
			defer bus.Close()
			store := agent.New(agent.Config{Clock: fc, Logger: log, Persister: agent.NewDiskPersister(d), Bus: bus})
			defer store.Close()
			keys, err := file.New(filepath.Join(dir, "keys"), nil)
			if err != nil {
				b.Fatal(err)
			}
			e, err := New(context.Background(), Config{StateDir: dir, Clock: fc, Logger: log, Bus: bus, Keys: map[string]KeyStore{"file": keys}})
			if err != nil {
				b.Fatal(err)
			}
			defer e.closeDurable()
			store.AddValidator(e)
			store.AddApplier(e)
			store.AddStateSource(e)
			var sb strings.Builder
			sb.WriteString(`{"router": [{"name": "r-bench", "peer-validation": true, "peer": [{"name": "p", "identifier": "id"}]}`)
			for i := range n {
				fmt.Fprintf(&sb, `, {"name": "r-%05d", "peer-validation": true, "peer": [{"name": "p", "identifier": "id-%d"}]}`, i, i)
			}
			sb.WriteString(`]}`)
			commit := func(p *gnmi.Path, v *gnmi.TypedValue) {
				tx := store.Begin(agent.Running)
				if err := tx.Apply(agent.Edit{Op: agent.OpMerge, Path: p, Value: v}); err != nil {
					b.Fatal(err)
				}
				if _, err := store.Commit(context.Background(), tx, agent.CommitOptions{User: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
			commit(&gnmi.Path{Elem: []*gnmi.PathElem{{Name: "authority"}}}, &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: []byte(sb.String())}})
			leaf := &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "authority"}, routerElem("r-bench"), {Name: "peer", Key: map[string]string{"name": "p"}}, {Name: "identifier"}}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				commit(leaf, &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: fmt.Sprintf("id-%d", i%2)}})
			}
		})
	}
}
