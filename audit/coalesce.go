package audit

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
)

// Writer is where a Coalescer writes: *Log.
type Writer interface {
	Write(Event) error
}

// Coalescer writes refusals (failed logins, denied operations) without
// letting a flood of them turn into a flood of synced writes: of the
// events of one key (a source address, a user and operation) it writes the
// first of each Window, counts the others, and writes one summary saying
// how many it left out when the window ends. At most MaxKeys keys are
// followed; events of further keys are counted under one summary. Safe for
// concurrent use; Run must run for summaries to be written on time.
type Coalescer struct {
	w       Writer
	clk     clock.Clock
	log     *slog.Logger
	window  time.Duration
	maxKeys int

	mu       sync.Mutex
	keys     map[string]*burst
	overflow *burst
}

// burst is what a Coalescer holds for one key in the current window.
type burst struct {
	start   time.Time
	first   Event // the event written, for the summary's fields
	dropped int
}

// Defaults of NewCoalescer's zero arguments.
const (
	DefaultWindow  = time.Minute
	DefaultMaxKeys = 1024
)

// NewCoalescer returns a Coalescer writing to w. Zero window and maxKeys
// take DefaultWindow and DefaultMaxKeys; nil clk is the wall clock.
func NewCoalescer(w Writer, clk clock.Clock, log *slog.Logger, window time.Duration, maxKeys int) *Coalescer {
	if window <= 0 {
		window = DefaultWindow
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Coalescer{w: w, clk: clk, log: log, window: window, maxKeys: maxKeys, keys: map[string]*burst{}}
}

// Coalesce writes ev unless an event of key was written less than a window
// ago, in which case it is counted for that window's summary. It reports
// whether ev was written (callers log what they audit, so the log is
// bounded the same way).
func (c *Coalescer) Coalesce(key string, ev Event) bool {
	now := c.clk.Now()
	c.mu.Lock()
	b := c.keys[key]
	var due []*burst
	if b != nil && now.Sub(b.start) >= c.window {
		due = append(due, b)
		delete(c.keys, key)
		b = nil
	}
	write := false
	switch {
	case b != nil:
		b.dropped++
	case len(c.keys) < c.maxKeys:
		c.keys[key] = &burst{start: now, first: ev}
		write = true
	default:
		if c.overflow == nil {
			c.overflow = &burst{start: now, first: ev}
			write = true
		} else {
			c.overflow.dropped++
		}
	}
	c.mu.Unlock()
	c.summarize(due, false)
	if write {
		c.write(ev)
	}
	return write
}

// Run writes the summaries of the windows that end until ctx is done, then
// those still open.
func (c *Coalescer) Run(ctx context.Context) {
	t := c.clk.NewTimer(c.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.Flush()
			return
		case <-t.C():
			c.flush(c.clk.Now())
			t.Reset(c.window)
		}
	}
}

// Flush writes the summaries of every open window.
func (c *Coalescer) Flush() { c.flush(time.Time{}) }

// flush writes the summaries of the windows that began a window before now
// (all of them when now is zero).
func (c *Coalescer) flush(now time.Time) {
	c.mu.Lock()
	var due []*burst
	for _, k := range slices.Sorted(maps.Keys(c.keys)) {
		b := c.keys[k]
		if now.IsZero() || now.Sub(b.start) >= c.window {
			due = append(due, b)
			delete(c.keys, k)
		}
	}
	var over *burst
	if c.overflow != nil && (now.IsZero() || now.Sub(c.overflow.start) >= c.window) {
		over, c.overflow = c.overflow, nil
	}
	c.mu.Unlock()
	c.summarize(due, false)
	if over != nil {
		c.summarize([]*burst{over}, true)
	}
}

// summarize writes one record per burst that left events out.
func (c *Coalescer) summarize(bs []*burst, overflow bool) {
	for _, b := range bs {
		if b.dropped == 0 {
			continue
		}
		ev := b.first
		ev.Time = c.clk.Now().UTC()
		ev.Detail = maps.Clone(ev.Detail)
		if ev.Detail == nil {
			ev.Detail = map[string]any{}
		}
		ev.Detail["coalesced"] = b.dropped
		ev.Detail["since"] = b.start.UTC().Format(time.RFC3339)
		like := "like it"
		if overflow {
			// The first event's source and user say nothing of the others.
			like = "from sources too many to follow one by one"
			delete(ev.Detail, "source")
			ev.User = ""
		}
		ev.Description = fmt.Sprintf("%s (and %d more %s since %s, not written one by one)", ev.Description, b.dropped, like, b.start.UTC().Format(time.RFC3339))
		c.write(ev)
	}
}

func (c *Coalescer) write(ev Event) {
	if err := c.w.Write(ev); err != nil {
		c.log.Error("audit: writing a record failed", "type", ev.Type, "err", err)
	}
}
