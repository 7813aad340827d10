package peer

import (
	"container/list"
	"sync"
)

// DefaultCacheSize is how many bad peer certificates a Cache remembers.
const DefaultCacheSize = 10000

// Cache remembers peer certificates (by SHA-256 of their DER) known to be
// revoked or expired, so a peer presenting one again is refused without
// rebuilding its path, and a revoked one stays refused. It holds at most
// its size; the least recently used entry leaves first. It is safe for
// concurrent use.
type Cache struct {
	mu      sync.Mutex
	size    int
	order   *list.List // of *cacheEntry, most recent first
	byFP    map[[32]byte]*list.Element
	observe func(Known)
}

// Known is one remembered certificate: the SHA-256 of its DER and what is
// known of it.
type Known struct {
	FP [32]byte
	Entry
}

// Entry is what the cache knows of one certificate.
type Entry struct {
	Result Result
	Reason string
}

type cacheEntry struct {
	fp [32]byte
	Entry
}

// NewCache returns an empty cache holding at most size entries (<= 0:
// DefaultCacheSize).
func NewCache(size int) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Cache{size: size, order: list.New(), byFP: map[[32]byte]*list.Element{}}
}

// Put records a bad certificate. A revoked verdict is never replaced by
// an expired one.
func (c *Cache) Put(fp [32]byte, r Result, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byFP[fp]; ok {
		e := el.Value.(*cacheEntry)
		changed := e.Result != Revoked && (e.Result != r || e.Reason != reason)
		if changed {
			e.Result, e.Reason = r, reason
		}
		c.order.MoveToFront(el)
		if changed && c.observe != nil {
			c.observe(Known{FP: fp, Entry: e.Entry})
		}
		return
	}
	c.byFP[fp] = c.order.PushFront(&cacheEntry{fp: fp, Entry: Entry{Result: r, Reason: reason}})
	if c.observe != nil {
		c.observe(Known{FP: fp, Entry: Entry{Result: r, Reason: reason}})
	}
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byFP, last.Value.(*cacheEntry).fp)
	}
}

// Get returns the verdict recorded for fp.
func (c *Cache) Get(fp [32]byte) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byFP[fp]
	if !ok {
		return Entry{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).Entry, true
}

// Observe has f called with every entry Put adds or changes, under the
// cache's lock (f must be quick and must not call the cache), so the owner
// can save what the cache learns.
func (c *Cache) Observe(f func(Known)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observe = f
}

// All returns what the cache remembers, least recently used first: Put in
// that order into an empty cache rebuilds it.
func (c *Cache) All() []Known {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Known, 0, c.order.Len())
	for el := c.order.Back(); el != nil; el = el.Prev() {
		e := el.Value.(*cacheEntry)
		out = append(out, Known{FP: e.fp, Entry: e.Entry})
	}
	return out
}

// Len is the number of certificates remembered.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
