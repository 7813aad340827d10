package gnmi

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/telemetry"
)

// maxBatch bounds the updates of one notification a stream sends, and
// maxNotificationBytes its size (clients' default receive limit is 4 MiB).
const (
	maxBatch             = 1000
	maxNotificationBytes = 1 << 20
)

// item is what a stream's queue holds: one pending update (val set),
// delete (val nil) or, with sync set, a sync_response marker. Updates and
// deletes carry their wire form, which streams may share.
type item struct {
	key  string
	path []*gnmi.PathElem
	val  *gnmi.TypedValue
	ts   int64
	sync bool
	// final marks the sync_response that ends a ONCE subscription.
	final bool
	// upd (an update) or del (a delete) is the item on the wire, size
	// about its bytes there.
	upd  *gnmi.Update
	del  *gnmi.Path
	size int
}

// newItem returns the update of path to val (nil: its delete).
func newItem(key string, path []*gnmi.PathElem, val *gnmi.TypedValue, ts int64) item {
	it := item{key: key, path: path, val: val, ts: ts, size: proto.Size(val) + 16*len(path) + len(key)}
	if val == nil {
		it.del = &gnmi.Path{Elem: path}
	} else {
		it.upd = &gnmi.Update{Path: &gnmi.Path{Elem: path}, Val: val}
	}
	return it
}

// sub is one subscription (path and mode) of a stream.
type sub struct {
	pat       []*gnmi.PathElem
	mode      gnmi.SubscriptionMode
	sample    time.Duration
	heartbeat time.Duration
	suppress  bool
	onChange  bool
}

// stream is one Subscribe RPC.
type stream struct {
	s      *Server
	srv    gnmi.GNMI_SubscribeServer
	caller Caller
	mode   gnmi.SubscriptionList_Mode
	enc    gnmi.Encoding
	prefix *gnmi.Path // origin and target echoed in notifications
	subs   []*sub
	q      *telemetry.Queue[item]

	done     chan struct{} // closed when the RPC returns
	finished chan struct{} // closed after the final sync of a ONCE
	failOnce sync.Once
	failc    chan error

	// sendingSince is the unix nanos at which a Send began, 0 when none is
	// in progress.
	sendingSince atomic.Int64
}

// Subscribe serves ONCE, POLL and STREAM subscriptions.
func (s *Server) Subscribe(srv gnmi.GNMI_SubscribeServer) error {
	c, _ := CallerFrom(srv.Context())
	req, err := srv.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	list := req.GetSubscribe()
	if list == nil {
		return status.Error(codes.InvalidArgument, "the first SubscribeRequest must carry a SubscriptionList")
	}
	st, err := s.newStream(srv, c, list)
	if err != nil {
		return err
	}
	if err := s.acquire(c.User); err != nil {
		return err
	}
	defer s.release(c.User)
	var samplers sync.WaitGroup
	defer samplers.Wait() // after done is closed: samplers stop on done
	defer close(st.done)
	if st.mode == gnmi.SubscriptionList_STREAM {
		s.disp.add(st)
		defer s.disp.remove(st)
	}
	baseline := make([]map[string]seen, len(st.subs))
	if !list.GetUpdatesOnly() {
		if baseline, err = st.snapshot(); err != nil {
			return err
		}
	}
	st.q.Mark(item{sync: true, final: st.mode == gnmi.SubscriptionList_ONCE})
	if st.mode == gnmi.SubscriptionList_STREAM {
		for i, sb := range st.subs {
			if iv := sb.timer(); iv > 0 {
				samplers.Add(1)
				go func() {
					defer samplers.Done()
					st.sampler(sb, iv, baseline[i])
				}()
			}
		}
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		st.sendLoop()
	}()
	go func() {
		defer s.wg.Done()
		st.recvLoop()
	}()
	return st.wait()
}

func (s *Server) acquire(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams >= s.limits.MaxStreams {
		return status.Errorf(codes.ResourceExhausted, "too many Subscribe streams: the agent serves at most %d at once", s.limits.MaxStreams)
	}
	if s.perUser[user] >= s.limits.MaxStreamsPerUser {
		return status.Errorf(codes.ResourceExhausted, "too many Subscribe streams for user %s: at most %d at once", user, s.limits.MaxStreamsPerUser)
	}
	s.streams++
	s.perUser[user]++
	return nil
}

func (s *Server) release(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams--
	if s.perUser[user]--; s.perUser[user] <= 0 {
		delete(s.perUser, user)
	}
}

func (s *Server) newStream(srv gnmi.GNMI_SubscribeServer, c Caller, list *gnmi.SubscriptionList) (*stream, error) {
	if err := checkEncoding(list.GetEncoding()); err != nil {
		return nil, err
	}
	if err := checkModels(list.GetUseModels()); err != nil {
		return nil, err
	}
	switch list.GetMode() {
	case gnmi.SubscriptionList_ONCE, gnmi.SubscriptionList_POLL, gnmi.SubscriptionList_STREAM:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "subscription mode %v is not ONCE, POLL or STREAM", list.GetMode())
	}
	subs := list.GetSubscription()
	if len(subs) == 0 {
		subs = []*gnmi.Subscription{{Path: &gnmi.Path{}}}
	}
	if len(subs) > s.limits.MaxSubscriptions {
		return nil, status.Errorf(codes.ResourceExhausted, "%d subscriptions in one request; at most %d", len(subs), s.limits.MaxSubscriptions)
	}
	st := &stream{
		s: s, srv: srv, caller: c, mode: list.GetMode(), enc: list.GetEncoding(),
		q:    telemetry.NewQueue[item](s.limits.MaxPending),
		done: make(chan struct{}), finished: make(chan struct{}), failc: make(chan error, 1),
	}
	if p := list.GetPrefix(); p.GetOrigin() != "" || p.GetTarget() != "" {
		st.prefix = &gnmi.Path{Origin: p.GetOrigin(), Target: p.GetTarget()}
	}
	min := s.limits.MinSampleInterval
	for _, x := range subs {
		pat, err := fullPath(list.GetPrefix(), x.GetPath(), true)
		if err != nil {
			return nil, s.status(err)
		}
		sb := &sub{pat: pat, mode: x.GetMode(), suppress: x.GetSuppressRedundant()}
		at := api.PathString(&gnmi.Path{Elem: pat})
		if hb := time.Duration(x.GetHeartbeatInterval()); hb > 0 {
			if hb < min {
				return nil, status.Errorf(codes.InvalidArgument, "subscription %s: heartbeat_interval %s is below the minimum %s", at, hb, min)
			}
			sb.heartbeat = hb
		}
		switch x.GetMode() {
		case gnmi.SubscriptionMode_TARGET_DEFINED, gnmi.SubscriptionMode_ON_CHANGE:
			sb.onChange = true
		case gnmi.SubscriptionMode_SAMPLE:
			iv := time.Duration(x.GetSampleInterval())
			switch {
			case iv == 0:
				iv = min
			case iv < min:
				return nil, status.Errorf(codes.InvalidArgument, "subscription %s: sample_interval %s is below the minimum %s (0 means the minimum)", at, iv, min)
			}
			sb.sample = iv
		default:
			return nil, status.Errorf(codes.InvalidArgument, "subscription %s: mode %v is not supported", at, x.GetMode())
		}
		st.subs = append(st.subs, sb)
	}
	return st, nil
}

// timer returns the period at which a subscription is sampled: its sample
// interval, or its heartbeat for ON_CHANGE; 0 for none.
func (sb *sub) timer() time.Duration {
	if sb.sample > 0 {
		return sb.sample
	}
	return sb.heartbeat
}

// fatal ends the stream with err (the first error wins).
func (st *stream) fatal(err error) {
	st.failOnce.Do(func() { st.failc <- err })
}

func (st *stream) overflowErr() error {
	return status.Errorf(codes.ResourceExhausted, "subscriber too slow: more than %d updates are waiting that the client has not read; disconnected, resubscribe", st.s.limits.MaxPending)
}

// wait blocks until the stream ends and returns its status.
func (st *stream) wait() error {
	stall := st.s.limits.StallTimeout
	t := st.s.clock.NewTimer(stall / 4)
	defer t.Stop()
	for {
		select {
		case err := <-st.failc:
			if err != nil {
				st.s.log.Info("gNMI Subscribe ended", "user", st.caller.User, "peer", st.caller.Peer, "reason", err)
			}
			return err
		case <-st.finished:
			return nil
		case <-st.s.stopping:
			return status.Error(codes.Unavailable, "the agent is shutting down")
		case <-st.srv.Context().Done():
			return status.FromContextError(st.srv.Context().Err()).Err()
		case <-t.C():
			if since := st.sendingSince.Load(); since != 0 && st.s.clock.Now().Sub(time.Unix(0, since)) >= stall {
				err := status.Errorf(codes.ResourceExhausted, "subscriber too slow: the client has not read for %s while %d updates wait; disconnected, resubscribe", stall, st.q.Len())
				st.s.log.Warn("gNMI Subscribe ended", "user", st.caller.User, "peer", st.caller.Peer, "reason", err)
				return err
			}
			t.Reset(stall / 4)
		}
	}
}

// snapshot queues the current value of every leaf the subscriptions select
// and returns, per subscription, what it queued (the baseline of
// suppress_redundant sampling).
func (st *stream) snapshot() ([]map[string]seen, error) {
	root, err := st.s.view()
	if err != nil {
		return nil, st.s.status(err)
	}
	ts := st.s.clock.Now().UnixNano()
	out := make([]map[string]seen, len(st.subs))
	for i, sb := range st.subs {
		m := map[string]seen{}
		err := walk(root, sb.pat, func(n node) error {
			return leaves(n, func(path []*gnmi.PathElem, tv *gnmi.TypedValue) error {
				m[api.PathString(&gnmi.Path{Elem: path})] = seen{path, tv}
				return st.putLeaf(path, tv, ts)
			})
		})
		if err != nil {
			return nil, st.s.status(err)
		}
		out[i] = m
	}
	return out, nil
}

func (st *stream) putLeaf(path []*gnmi.PathElem, tv *gnmi.TypedValue, ts int64) error {
	v, err := encodeLeaf(path, tv, st.enc)
	if err != nil {
		return err
	}
	k := api.PathString(&gnmi.Path{Elem: path})
	if !st.q.Put(k, newItem(k, path, v, ts)) {
		return st.overflowErr()
	}
	return nil
}

// offer queues a change that matches one of the stream's ON_CHANGE
// subscriptions. Called by the dispatcher; never blocks.
func (st *stream) offer(c *change, ts int64) {
	if !st.q.Put(c.key, c.item(st.enc, ts)) {
		st.fatal(st.overflowErr())
	}
}

// sampler sends sb's leaves every period until the stream ends: SAMPLE
// values (only changed ones with suppress_redundant, all of them when a
// heartbeat is due) and ON_CHANGE heartbeats.
func (st *stream) sampler(sb *sub, period time.Duration, last map[string]seen) {
	clk := st.s.clock
	if last == nil {
		last = map[string]seen{}
	}
	lastFull := clk.Now()
	t := clk.NewTimer(period)
	defer t.Stop()
	for {
		select {
		case <-st.done:
			return
		case <-t.C():
		}
		now := clk.Now()
		full := !sb.suppress || sb.onChange || (sb.heartbeat > 0 && now.Sub(lastFull) >= sb.heartbeat)
		if full {
			lastFull = now
		}
		cur, err := st.sample(sb, now.UnixNano(), full, last)
		if err != nil {
			st.fatal(err)
			return
		}
		last = cur
		t.Reset(period)
	}
}

// sample queues sb's leaves as they are now: all of them when full, else
// only those that differ from last. It returns the values seen. For SAMPLE
// subscriptions, leaves that were in last and are gone are sent as deletes.
// seen is a leaf as a sampler last saw it.
type seen struct {
	path []*gnmi.PathElem
	val  *gnmi.TypedValue
}

func (st *stream) sample(sb *sub, ts int64, full bool, last map[string]seen) (map[string]seen, error) {
	root, err := st.s.view()
	if err != nil {
		return nil, st.s.status(err)
	}
	cur := map[string]seen{}
	err = walk(root, sb.pat, func(n node) error {
		return leaves(n, func(path []*gnmi.PathElem, tv *gnmi.TypedValue) error {
			k := api.PathString(&gnmi.Path{Elem: path})
			cur[k] = seen{path, tv}
			if !full && proto.Equal(last[k].val, tv) {
				return nil
			}
			return st.putLeaf(path, tv, ts)
		})
	})
	if err != nil {
		return nil, st.s.status(err)
	}
	if !sb.onChange {
		for k, old := range last {
			if _, ok := cur[k]; !ok {
				if !st.q.Put(k, newItem(k, old.path, nil, ts)) {
					return nil, st.overflowErr()
				}
			}
		}
	}
	return cur, nil
}

// sendLoop sends what the queue holds until the stream ends or a Send
// fails. It may outlive the RPC handler while blocked in Send on a client
// that does not read; gRPC unblocks it when the RPC ends.
func (st *stream) sendLoop() {
	var batch []item
	for {
		select {
		case <-st.done:
			return
		case <-st.q.Ready():
		}
		if st.q.Overflowed() {
			st.fatal(st.overflowErr())
			return
		}
		for {
			batch = st.q.Take(batch[:0], maxBatch)
			if len(batch) == 0 {
				break
			}
			final, err := st.sendBatch(batch)
			if err != nil {
				st.fatal(err)
				return
			}
			if final {
				close(st.finished)
				return
			}
		}
	}
}

// sendBatch sends items as notifications: consecutive updates and deletes
// share one, split where a delete follows an update (a notification's
// deletes apply before its updates) and at sync markers.
func (st *stream) sendBatch(batch []item) (final bool, err error) {
	var n *gnmi.Notification
	size := 0
	flush := func() error {
		if n == nil {
			return nil
		}
		err := st.send(&gnmi.SubscribeResponse{Response: &gnmi.SubscribeResponse_Update{Update: n}})
		n, size = nil, 0
		return err
	}
	for _, it := range batch {
		if it.sync {
			if err := flush(); err != nil {
				return false, err
			}
			if err := st.send(&gnmi.SubscribeResponse{Response: &gnmi.SubscribeResponse_SyncResponse{SyncResponse: true}}); err != nil {
				return false, err
			}
			if it.final {
				return true, nil
			}
			continue
		}
		if n != nil && (it.del != nil && len(n.Update) > 0 || size+it.size > maxNotificationBytes) {
			if err := flush(); err != nil {
				return false, err
			}
		}
		size += it.size
		if n == nil {
			n = &gnmi.Notification{Timestamp: it.ts, Prefix: st.prefix}
		}
		if it.ts > n.Timestamp {
			n.Timestamp = it.ts
		}
		if it.del != nil {
			n.Delete = append(n.Delete, it.del)
		} else {
			n.Update = append(n.Update, it.upd)
		}
	}
	return false, flush()
}

func (st *stream) send(r *gnmi.SubscribeResponse) error {
	st.sendingSince.Store(st.s.clock.Now().UnixNano())
	err := st.srv.Send(r)
	st.sendingSince.Store(0)
	if err != nil {
		return fmt.Errorf("sending to %s: %w", st.caller.Peer, err)
	}
	return nil
}

// recvLoop reads what the client sends after the SubscriptionList: Poll
// requests in POLL mode; anything else ends the stream.
func (st *stream) recvLoop() {
	for {
		req, err := st.srv.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if st.mode == gnmi.SubscriptionList_POLL {
					st.fatal(nil) // the client will poll no more
				}
				return // ONCE and STREAM: a half-close ends nothing
			}
			st.fatal(err)
			return
		}
		select {
		case <-st.done:
			return
		default:
		}
		switch {
		case req.GetPoll() != nil && st.mode == gnmi.SubscriptionList_POLL:
			if _, err := st.snapshot(); err != nil {
				st.fatal(err)
				return
			}
			st.q.Mark(item{sync: true})
		case req.GetPoll() != nil:
			st.fatal(status.Errorf(codes.InvalidArgument, "Poll on a %v subscription; only POLL subscriptions take Poll requests", st.mode))
			return
		default:
			st.fatal(status.Error(codes.InvalidArgument, "a stream takes one SubscriptionList; open another Subscribe for more"))
			return
		}
	}
}
