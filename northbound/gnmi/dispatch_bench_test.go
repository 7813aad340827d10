package gnmi

import (
	"fmt"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/telemetry"
)

// BenchmarkDispatch1000: the dispatcher's share of a fan-out, without
// gRPC: one alarm leaf matched and queued for 1,000 ON_CHANGE streams,
// subscribed to every alarm or each to an alarm of its own.
func BenchmarkDispatch1000(b *testing.B) {
	for _, tc := range []struct {
		desc    string
		pattern func(i int) string
		want    int
	}{
		{"every-alarm", func(int) string { return "/alarms/alarm" }, 1000},
		{"own-alarm", func(i int) string { return fmt.Sprintf("/alarms/alarm[id=a%d]", i) }, 1},
	} {
		b.Run(tc.desc, func(b *testing.B) {
			s := &Server{clock: clock.Real{}}
			d := newDispatcher(s, telemetry.NewBus())
			var streams []*stream
			for i := range 1000 {
				st := &stream{s: s, q: telemetry.NewQueue[item](1000), failc: make(chan error, 1),
					subs: []*sub{{pat: p(b, tc.pattern(i)).GetElem(), onChange: true}}}
				d.add(st)
				streams = append(streams, st)
			}
			ev := api.Event{Kind: api.EventState, Time: time.Now(), Changes: []api.Change{{Path: p(b, "/alarms/alarm[id=a7]/text"), Value: strVal("attempt")}}}
			var buf []item
			for b.Loop() {
				d.deliver(ev)
				n := 0
				for _, st := range streams {
					buf = st.q.Take(buf[:0], 10)
					n += len(buf)
				}
				if n != tc.want {
					b.Fatalf("%d streams got the change, want %d", n, tc.want)
				}
			}
		})
	}
}
