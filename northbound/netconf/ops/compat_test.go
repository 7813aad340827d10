package ops

import (
	"strings"
	"testing"
)

// github.com/nemith/netconf v0.0.2 sends lock and unlock as <lock xmlns="">:
// a base operation in no namespace is taken as the base operation; other
// elements in no namespace are still refused.
func TestBaseOperationInNoNamespace(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr, "alice", "secret")
	c.mustOK(`<lock xmlns=""><target><running/></target></lock>`)
	c.mustOK(`<unlock xmlns=""><target><running/></target></unlock>`)
	if got := c.rpc(`<frobnicate xmlns=""/>`); !strings.Contains(got, "operation-not-supported") {
		t.Fatalf("unknown operation in no namespace: %s", got)
	}
}
