package ops

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkEditCommit measures edit-config (candidate) + commit round trips
// over one base:1.1 session.
func BenchmarkEditCommit(b *testing.B) {
	e := newEnv(b)
	c := dial(b, e.addr, "alice", "secret")
	i := 0
	for b.Loop() {
		i++
		c.mustOK(editCand(fmt.Sprintf(`<router><name>r%d</name><peer-validation>true</peer-validation></router>`, i%50)))
		c.mustOK(`<commit/>`)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

// BenchmarkGetConfig1000 measures get-config of running holding 1,000 list
// entries.
func BenchmarkGetConfig1000(b *testing.B) {
	e := newEnv(b)
	c := dial(b, e.addr, "alice", "secret")
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, `<router><name>r%d</name><peer-validation>true</peer-validation><peer><name>p</name><identifier>cn%d</identifier></peer></router>`, i, i)
	}
	c.mustOK(editCand(sb.String()))
	c.mustOK(`<commit/>`)
	for b.Loop() {
		if got := c.data(`<get-config><source><running/></source></get-config>`); strings.Count(got, "<router>") != 1000 {
			b.Fatalf("got %d entries", strings.Count(got, "<router>"))
		}
	}
}

// BenchmarkEditCommitWith1000 is BenchmarkEditCommit with 1,000 routers in
// running: an edit of one router must cost what it changes, not what the
// list holds.
func BenchmarkEditCommitWith1000(b *testing.B) {
	e := newEnv(b)
	c := dial(b, e.addr, "alice", "secret")
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, `<router><name>big%d</name><peer-validation>true</peer-validation><peer><name>p</name><identifier>cn%d</identifier></peer></router>`, i, i)
	}
	c.mustOK(editCand(sb.String()))
	c.mustOK(`<commit/>`)
	i := 0
	for b.Loop() {
		i++
		c.mustOK(editCand(fmt.Sprintf(`<router><name>r%d</name><peer-validation>%t</peer-validation></router>`, i%50, i%2 == 0)))
		c.mustOK(`<commit/>`)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}
