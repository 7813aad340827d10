package agent

import (
	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

// AddStateSource registers a provider of operational state.
func (s *Store) AddStateSource(src api.StateSource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stateSources = append(s.stateSources, src)
}

// State returns a fresh tree with the operational state of every source.
func (s *Store) State() (*gen.Device, error) {
	s.mu.RLock()
	srcs := append([]api.StateSource(nil), s.stateSources...)
	s.mu.RUnlock()
	out := &gen.Device{}
	for _, src := range srcs {
		st := src.State()
		if st == nil {
			continue
		}
		if err := mergeInto(out, st); err != nil {
			return nil, err
		}
	}
	return out, nil
}
