package ops

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

func configOf(t testing.TB, body string) *node {
	t.Helper()
	op, ok := parseOp(rpcMsg(`<edit-config><target><candidate/></target><config>` + body + `</config></edit-config>`))
	if !ok || op.child("config") == nil {
		t.Fatalf("cannot parse %s", body)
	}
	return op.child("config")
}

// A default merge of one router under <authority> is an edit of that
// router, not of the container: the commit then validates and diffs that
// entry only.
func TestMergeEditsCarryTheFinestPath(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name><peer-validation>true</peer-validation></router></authority>`,
			[]string{"merge /authority/router[name=r1]"}},
		{`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name></router><router><name>r2</name></router><crl-settings><discover-from-certificates>true</discover-from-certificates></crl-settings></authority>`,
			[]string{"merge /authority/router[name=r1]", "merge /authority/router[name=r2]", "merge /authority/crl-settings/discover-from-certificates"}},
		{`<authority xmlns="urn:pkiagent:yang:pki-authority" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><router nc:operation="delete"><name>r1</name></router></authority>`,
			[]string{"delete /authority/router[name=r1]"}},
		{`<authority xmlns="urn:pkiagent:yang:pki-authority" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="replace"><router><name>r1</name></router></authority>`,
			[]string{"replace /authority"}},
	} {
		edits, err := convertConfig(configOf(t, tc.body), "merge", nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		var got []string
		for _, e := range edits {
			got = append(got, e.Op.String()+" "+api.PathString(e.Path))
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.body, got, tc.want)
		}
	}
}

// A merged container's child that appears twice is refused, as it is
// inside a value.
func TestMergedContainerRefusesARepeatedChild(t *testing.T) {
	for _, body := range []string{
		`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name></router><router><name>r1</name></router></authority>`,
		`<authority xmlns="urn:pkiagent:yang:pki-authority"><crl-settings/><crl-settings/></authority>`,
	} {
		if _, err := convertConfig(configOf(t, body), "merge", nil); err == nil || !strings.Contains(err.Error(), "more than once") {
			t.Errorf("%s: got %v, want a refusal of the repeated child", body, err)
		}
	}
}

// The work of an edit-config + commit of one router does not grow with
// the routers in running: the allocations with 5,000 routers present stay
// within a margin of those with 10. (Allocations count the nodes copied,
// decoded, validated and diffed; wall time would be flaky.)
func TestEditCommitCostDoesNotGrowWithTheList(t *testing.T) {
	allocs := func(n int) float64 {
		initial := &gen.Device{}
		for i := range n {
			r, err := initial.GetOrCreateAuthority().NewRouter(fmt.Sprintf("big%05d", i))
			if err != nil {
				t.Fatal(err)
			}
			r.PeerValidation = new(bool)
		}
		s := agent.New(agent.Config{Initial: initial, Logger: slog.New(slog.DiscardHandler)})
		i := 0
		return testing.AllocsPerRun(20, func() {
			i++
			edits, err := convertConfig(configOf(t, fmt.Sprintf(
				`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r%d</name><peer-validation>%t</peer-validation></router></authority>`, i%3, i%2 == 0)), "merge", nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.EditCandidate(api.NetconfOwner(1), edits...); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CommitCandidate(context.Background(), agent.CommitOptions{User: "alice", Owner: api.NetconfOwner(1)}); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(10), allocs(5000)
	t.Logf("allocations per edit-config + commit: %.0f with 10 routers, %.0f with 5,000", small, large)
	if large > small*1.2+50 {
		t.Errorf("an edit of one router allocates %.0f times with 5,000 routers present, %.0f with 10: its work grows with the list", large, small)
	}
}
