package gnmi

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
)

func percentile(d []time.Duration, q float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*q)]
}

// BenchmarkSetLeaf: one leaf per Set, over TLS on loopback, committed.
func BenchmarkSetLeaf(b *testing.B) {
	e := newEnvB(b, envOpts{})
	c := e.admin()
	ctx := context.Background()
	if _, err := c.Set(ctx, &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(b, "/authority/certificate-revocation-list[url=http://x/y.crl]"), Val: jsonVal(`{"url":"http://x/y.crl"}`)}}}); err != nil {
		b.Fatal(err)
	}
	path := p(b, "/authority/certificate-revocation-list[url=http://x/y.crl]/polling-interval")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		_, err := c.Set(ctx, &gnmi.SetRequest{Update: []*gnmi.Update{{Path: path, Val: &gnmi.TypedValue{Value: &gnmi.TypedValue_UintVal{UintVal: uint64(1 + i%168)}}}}})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-µs")
}

// BenchmarkGetTree1000: Get of the whole tree (config and state) with 1,000
// trusted CAs and 1,000 CRL sources, JSON_IETF.
func BenchmarkGetTree1000(b *testing.B) {
	e := newEnvB(b, envOpts{})
	tx := e.store.Begin(agent.Running)
	var edits []agent.Edit
	pem := "-----BEGIN CERTIFICATE-----\n" + string(make([]byte, 0)) + "MIIBszCCAVmgAwIBAgIUQ0E=\n-----END CERTIFICATE-----\n"
	for i := range 1000 {
		edits = append(edits,
			agent.Edit{Op: agent.OpMerge, Path: p(b, fmt.Sprintf("/authority/trusted-ca-certificate[name=ca%d]", i)), Value: jsonVal(fmt.Sprintf(`{"name":"ca%d","content":%q}`, i, pem))},
			agent.Edit{Op: agent.OpMerge, Path: p(b, fmt.Sprintf("/authority/certificate-revocation-list[url=http://crl.example/%d.crl]", i)), Value: jsonVal(fmt.Sprintf(`{"url":"http://crl.example/%d.crl"}`, i))},
		)
	}
	if err := tx.Apply(edits...); err != nil {
		b.Fatal(err)
	}
	if _, err := e.store.Commit(context.Background(), tx, agent.CommitOptions{User: "bench", Owner: api.Owner{Name: "bench"}}); err != nil {
		b.Fatal(err)
	}
	c := e.admin()
	for _, typ := range []gnmi.GetRequest_DataType{gnmi.GetRequest_ALL, gnmi.GetRequest_CONFIG} {
		b.Run(typ.String(), func(b *testing.B) {
			size := 0
			for i := 0; i < b.N; i++ {
				r, err := c.Get(context.Background(), &gnmi.GetRequest{Encoding: gnmi.Encoding_JSON_IETF, Type: typ})
				if err != nil {
					b.Fatal(err)
				}
				size = len(r.Notification[0].Update[0].Val.GetJsonIetfVal())
			}
			b.ReportMetric(float64(size), "json-bytes")
		})
	}
}

// BenchmarkFanout1000: one alarm published on the bus, until 1,000 STREAM
// ON_CHANGE subscribers have all received it.
func BenchmarkFanout1000(b *testing.B) {
	const subs = 1000
	e := newEnvB(b, envOpts{limits: Limits{MaxStreams: subs + 10, MaxStreamsPerUser: subs + 10}})
	var clients []gnmi.GNMIClient
	for range 10 {
		clients = append(clients, e.admin())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int, subs*4)
	var ready sync.WaitGroup
	ready.Add(subs)
	var wg sync.WaitGroup
	for i := range subs {
		cl, err := clients[i%len(clients)].Subscribe(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cl.Send(&gnmi.SubscribeRequest{Request: &gnmi.SubscribeRequest_Subscribe{Subscribe: &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_STREAM, UpdatesOnly: true,
			Subscription: []*gnmi.Subscription{{Path: p(b, "/alarms/alarm"), Mode: gnmi.SubscriptionMode_ON_CHANGE}}}}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			synced := false
			for {
				r, err := cl.Recv()
				if err != nil {
					if !synced {
						ready.Done()
					}
					return
				}
				if r.GetSyncResponse() {
					synced = true
					ready.Done()
					continue
				}
				got <- i
			}
		}()
	}
	ready.Wait()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		d := &gen.Device{}
		a := d.GetOrCreateAlarms().GetOrCreateAlarm("crl-unreachable")
		a.Text = ygotString(fmt.Sprint("attempt ", n))
		ch, _ := api.Diff(&gen.Device{}, d)
		e.bus.Publish(api.Event{Kind: api.EventState, Time: time.Now(), Changes: ch[len(ch)-1:]})
		for range subs {
			select {
			case <-got:
			case <-time.After(30 * time.Second):
				b.Fatal("fan-out timed out")
			}
		}
	}
	b.StopTimer()
	// CPU time (server and clients, this process) is what a loaded
	// machine's wall clock hides.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	cancel()
	wg.Wait()
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
