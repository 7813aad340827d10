package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/pkiagent/pkiagent/gen"
)

// CommitInfo identifies a commit in the history.
type CommitInfo struct {
	ID      uint64    `json:"id"`
	User    string    `json:"user"`
	Time    time.Time `json:"time"`
	Comment string    `json:"comment,omitempty"`
}

type historyEntry struct {
	info CommitInfo
	root *gen.Device
}

// History returns the retained commits, oldest first.
func (s *Store) History() []CommitInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]CommitInfo, len(s.history))
	for i, h := range s.history {
		out[i] = h.info
	}
	return out
}

// RollbackTo makes the configuration of commit id running again, as a new
// commit.
func (s *Store) RollbackTo(ctx context.Context, id uint64, opts CommitOptions) (CommitInfo, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.RLock()
	var target *gen.Device
	for _, h := range s.history {
		if h.info.ID == id {
			target = h.root
		}
	}
	s.mu.RUnlock()
	if target == nil {
		return CommitInfo{}, fmt.Errorf("rollback to commit %d: %w (history keeps the last %d)", id, ErrNoSuchCommit, s.maxHist)
	}
	if opts.Comment == "" {
		opts.Comment = fmt.Sprintf("rollback to commit %d", id)
	}
	return s.commitLocked(ctx, newTxFromTrees(s.runningTree(), target), opts, false, sealMemo{})
}
