package agent

import (
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/gen"
)

// mergeInto merges src into dst (lists by key).
func mergeInto(dst, src *gen.Device) error {
	return ygot.MergeStructInto(dst, src)
}

// View returns running (or candidate) config merged with operational state,
// as a fresh tree the caller owns.
func (s *Store) View(ds Datastore, withState bool) (*gen.Device, error) {
	cfg, err := ygot.DeepCopy(s.Get(ds))
	if err != nil {
		return nil, err
	}
	out := cfg.(*gen.Device)
	if !withState {
		return out, nil
	}
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	if err := mergeInto(out, st); err != nil {
		return nil, err
	}
	return out, nil
}
