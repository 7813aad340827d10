// Package audit appends security events (CSR generated, certificate
// ingested, CRL updated, commits, refused logins and operations) as JSON
// lines to the agent's audit log, in the shape of the Juniper SSR audit
// events operators already parse; its Coalescer keeps a flood of refusals
// to a few lines.
package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// Event is one audit record.
type Event struct {
	Time        time.Time      `json:"time"`
	Node        string         `json:"node"`
	User        string         `json:"user"`
	Type        string         `json:"type"` // e.g. system.generate_csr
	Description string         `json:"description"`
	Detail      map[string]any `json:"detail,omitempty"`
	Permitted   bool           `json:"permitted"`
}

// Log is an append-only audit log file. Safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	node string
	tees []func(Event)
}

// Tee registers f to receive a copy of every record written, after it is
// on disk (a syslog sender). f is called from the writer's goroutine and
// must not block. Register tees before the first Write.
func (l *Log) Tee(f func(Event)) {
	l.mu.Lock()
	l.tees = append(l.tees, f)
	l.mu.Unlock()
}

// Open opens (creating, mode 0600) the audit log at path.
func Open(path, node string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &Log{f: f, node: node}, nil
}

// Write appends ev (filling in the node) and syncs it to disk.
func (l *Log) Write(ev Event) error {
	if ev.Node == "" {
		ev.Node = l.node
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	l.mu.Lock()
	tees := l.tees
	_, err = l.f.Write(append(b, '\n'))
	if err == nil {
		err = l.f.Sync()
	}
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write audit log %s: %w", l.f.Name(), err)
	}
	for _, f := range tees {
		f(ev)
	}
	return nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
