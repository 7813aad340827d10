package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// BenchmarkGNMISetRouterLeaf: a gNMI Set of one leaf of one router, over
// TLS to the binary (datastore, PKI engine, persistence), with n other
// routers configured, each with peer-validation and a peer. The cost
// should not grow with n.
func BenchmarkGNMISetRouterLeaf(b *testing.B) {
	for _, n := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("routers=%d", n), func(b *testing.B) {
			state := b.TempDir()
			p := runAgentBinary(b, state)
			c := gnmiClient(b, p, state)
			ctx := context.Background()
			var sb strings.Builder
			sb.WriteString(`{"router": [{"name": "r-bench", "peer-validation": true, "peer": [{"name": "p", "identifier": "id"}]}`)
			for i := range n {
				fmt.Fprintf(&sb, `, {"name": "r-%05d", "peer-validation": true, "peer": [{"name": "p", "identifier": "id-%d"}]}`, i, i)
			}
			sb.WriteString(`]}`)
			if _, err := c.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{
				Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}}},
				Val:  &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(sb.String())}},
			}}}); err != nil {
				b.Fatal(err)
			}
			leaf := &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}, {Name: "router", Key: map[string]string{"name": "r-bench"}},
				{Name: "peer", Key: map[string]string{"name": "p"}}, {Name: "identifier"}}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: leaf,
					Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: fmt.Sprintf("id-%d", i%2)}}}}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
