package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/persist"
)

// Journal limits after which the snapshot is rewritten and the journal
// emptied, so start-up replays a bounded amount.
const (
	compactRecords = 1000
	compactBytes   = 16 << 20
)

// journalRecord is one commit in the journal: the new content of every
// subtree it changed. Replaying it is idempotent.
type journalRecord struct {
	CommitInfo
	Ops []journalOp `json:"ops"`
	// History, in the record that follows a snapshot, is the commits
	// retained before it (their trees are not kept).
	History []CommitInfo `json:"history,omitempty"`
}

type journalOp struct {
	Path  []journalElem   `json:"path"`
	Value json.RawMessage `json:"value,omitempty"` // absent: the subtree was deleted
}

// DiskPersister saves running in a persist.Dir: one journal record per
// commit, and a fresh snapshot when the journal grows past its limits or a
// commit replaced the whole tree.
//
// Before a record is written it is replayed, as the next start will, onto
// the running it extends, and the subtrees it changed must come out as the
// commit made them: a commit whose record would not load back is refused
// (ErrPersist) instead of acknowledged, so the agent never saves a
// configuration it cannot start with. The check costs what the record
// costs: the changed subtrees are parsed once more and compared.
type DiskPersister struct {
	dir *persist.Dir
	// last is running as saved so far (nil: empty), which the next
	// record's replay starts from.
	last *gen.Device
}

// NewDiskPersister returns a persister over an open, loaded directory.
func NewDiskPersister(dir *persist.Dir) *DiskPersister { return &DiskPersister{dir: dir} }

// Save implements Persister.
func (p *DiskPersister) Save(_ context.Context, rec *Record) error {
	n, size := p.dir.JournalSize()
	if rec.Whole || n >= compactRecords || size >= compactBytes {
		return p.snapshot(rec)
	}
	jr := journalRecord{CommitInfo: rec.Info}
	for _, elems := range rec.Scopes {
		raw, ok, err := subtreeJSON(rec.Root, elems)
		if err != nil {
			return err
		}
		if len(elems) == 0 {
			return p.snapshot(rec)
		}
		op := journalOp{Path: toJournalPath(elems)}
		if ok {
			op.Value = raw
		}
		jr.Ops = append(jr.Ops, op)
	}
	b, err := json.Marshal(jr)
	if err != nil {
		return err
	}
	if err := p.checkReplay(rec, b); err != nil {
		return err
	}
	if err := p.dir.Append(b); err != nil {
		return err
	}
	p.last = rec.Root
	return nil
}

// checkReplay checks, before the record b is written, what its replay at
// the next start depends on: every list entry in the changed subtrees
// carries its key, equal to the key it is filed under (the record names
// entries by key, and the values carry the key leaf), and the record,
// replayed as Load does onto the running it extends, gives back the same
// subtrees (compared as the JSON written: a cost of the order of the
// record's, where a tree diff would cost many times more).
func (p *DiskPersister) checkReplay(rec *Record, b []byte) error {
	fail := func(err error) error {
		return fmt.Errorf("the journal record of commit %d would not load back at the next start: %w", rec.Info.ID, err)
	}
	for _, elems := range rec.Scopes {
		if err := checkListKeys(rec.Root, elems); err != nil {
			return fail(err)
		}
	}
	var jr journalRecord
	if err := json.Unmarshal(b, &jr); err != nil {
		return fail(err)
	}
	base := p.last
	if base == nil {
		base = &gen.Device{}
	}
	got, err := replayOps(base, jr.Ops)
	if err != nil {
		return fail(err)
	}
	for _, op := range jr.Ops {
		elems := fromJournalPath(op.Path).GetElem()
		raw, ok, err := subtreeJSON(got, elems)
		if err != nil {
			return fail(err)
		}
		if ok != (op.Value != nil) || (ok && !sameJSON(raw, op.Value)) {
			return fail(fmt.Errorf("%s loads back differently from what was committed", prefixString(elems)))
		}
	}
	return nil
}

// sameJSON compares two JSON texts as written, but for white space.
func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// checkListKeys reports a list entry at or under elems in root whose key
// leaf is missing or differs from the key it is filed under.
func checkListKeys(root *gen.Device, elems []*gnmi.PathElem) error {
	for i := range elems {
		if len(elems[i].Key) == 0 {
			continue
		}
		v, err := lookup(root, elems[:i+1])
		if err != nil || !v.IsValid() {
			return err
		}
		if err := entryKeyMatches(v, entryAt(elems[:i+1]), elems[i].Key, elems[:i+1]); err != nil {
			return err
		}
	}
	v, err := lookup(root, elems)
	if err != nil || !v.IsValid() {
		return err
	}
	e := RootEntry()
	if len(elems) > 0 {
		e = entryAt(elems)
	}
	return walkListKeys(v, e, elems)
}

func entryKeyMatches(v reflect.Value, e *yang.Entry, key map[string]string, at []*gnmi.PathElem) error {
	for _, k := range strings.Fields(e.Key) {
		fi, ok := fieldIndex(v.Type().Elem(), k)
		if !ok {
			continue
		}
		f := v.Elem().Field(fi)
		if f.Kind() != reflect.Pointer || f.IsNil() {
			return fmt.Errorf("list entry %s has no key leaf %s", prefixString(at), k)
		}
		if fmt.Sprint(f.Elem().Interface()) != key[k] {
			return fmt.Errorf("list entry %s has key leaf %s set to another value", prefixString(at), k)
		}
	}
	return nil
}

// walkListKeys checks the list entries in the struct v of schema e.
func walkListKeys(v reflect.Value, e *yang.Entry, at []*gnmi.PathElem) error {
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct || e == nil {
		return nil
	}
	s := v.Elem()
	for name, child := range e.Dir {
		if child.IsLeaf() || child.IsLeafList() {
			continue
		}
		fi, ok := fieldIndex(s.Type(), name)
		if !ok {
			continue
		}
		f := s.Field(fi)
		if !child.IsList() {
			if err := walkListKeys(f, child, append(at[:len(at):len(at)], &gnmi.PathElem{Name: name})); err != nil {
				return err
			}
			continue
		}
		for it := f.MapRange(); it.Next(); {
			here := append(at[:len(at):len(at)], &gnmi.PathElem{Name: name, Key: map[string]string{child.Key: fmt.Sprint(it.Key().Interface())}})
			if err := entryKeyMatches(it.Value(), child, here[len(here)-1].Key, here); err != nil {
				return err
			}
			if err := walkListKeys(it.Value(), child, here); err != nil {
				return err
			}
		}
	}
	return nil
}

// replayOps applies a journal record's ops to root: the new content of
// each subtree, or its removal.
func replayOps(root *gen.Device, ops []journalOp) (*gen.Device, error) {
	tx := newTx(root)
	for _, op := range ops {
		p := fromJournalPath(op.Path)
		e := Edit{Op: OpRemove, Path: p}
		if op.Value != nil {
			e = Edit{Op: OpReplace, Path: p, Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: op.Value}}}
		}
		if err := tx.Apply(e); err != nil {
			return nil, err
		}
	}
	return tx.Root(), nil
}

// snapshot writes the whole tree, after checking its list keys (the check
// a journal record gets; the tree is not parsed back, which would cost
// twice the snapshot).
func (p *DiskPersister) snapshot(rec *Record) error {
	b, err := EmitJSON(rec.Root)
	if err != nil {
		return fmt.Errorf("render running as JSON: %w", err)
	}
	if err := checkListKeys(rec.Root, nil); err != nil {
		return fmt.Errorf("the snapshot of commit %d would not load back at the next start: %w", rec.Info.ID, err)
	}
	if err := p.dir.Compact(b); err != nil {
		return err
	}
	p.last = rec.Root
	rec.Snapshot = true
	meta, _ := json.Marshal(journalRecord{CommitInfo: rec.Info, History: rec.History})
	return p.dir.Append(meta)
}

// Load reads running from dir: the snapshot, then every journal record
// replayed on it, then YANG validation of the result. It returns the tree,
// the commits of the history, oldest first, with the tree each left running
// (nil for the commits before the snapshot, whose trees are not kept).
// Any error names the file at fault.
func Load(dir *persist.Dir) (*gen.Device, []CommitInfo, []*gen.Device, error) {
	snap, records, err := dir.Load()
	if err != nil {
		return nil, nil, nil, err
	}
	snapPath := filepath.Join(dir.Path(), persist.SnapshotFile)
	jpath := filepath.Join(dir.Path(), persist.JournalFile)
	root := &gen.Device{}
	if len(snap) > 0 {
		if err := gen.Unmarshal(snap, root); err != nil {
			return nil, nil, nil, fmt.Errorf("%s is not a valid pki-authority configuration (%w); fix or move it aside, the agent will not overwrite it: %w", snapPath, persist.ErrCorrupt, err)
		}
	}
	var infos []CommitInfo
	var roots []*gen.Device
	for i, raw := range records {
		var jr journalRecord
		if err := json.Unmarshal(raw, &jr); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: record %d is not valid JSON (%w): %w", jpath, i+1, persist.ErrCorrupt, err)
		}
		next, err := replayOps(root, jr.Ops)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: record %d (commit %d) does not apply (%w): %w", jpath, i+1, jr.ID, persist.ErrCorrupt, err)
		}
		root = next
		for _, h := range jr.History {
			infos = append(infos, h)
			roots = append(roots, nil)
		}
		infos = append(infos, jr.CommitInfo)
		roots = append(roots, root)
	}
	if err := root.ΛValidate(); err != nil {
		return nil, nil, nil, fmt.Errorf("saved configuration in %s fails YANG validation (%w): %w", dir.Path(), persist.ErrCorrupt, err)
	}
	if err := checkMandatory(reflect.ValueOf(root), RootEntry(), nil); err != nil {
		return nil, nil, nil, fmt.Errorf("saved configuration in %s fails YANG validation (%w): %w", dir.Path(), persist.ErrCorrupt, err)
	}
	return root, infos, roots, nil
}

// OpenStore opens the state directory, loads running from it and returns a
// Store that persists there. cfg's Persister, Initial and InitialCommit are
// set from the directory.
func OpenStore(path string, cfg Config) (*Store, *persist.Dir, error) {
	dir, err := persist.Open(path)
	if err != nil {
		return nil, nil, err
	}
	root, infos, roots, err := Load(dir)
	if err != nil {
		dir.Close()
		return nil, nil, err
	}
	dp := NewDiskPersister(dir)
	dp.last = root
	cfg.Persister = dp
	cfg.Initial = root
	if len(infos) > 0 {
		cfg.InitialCommit = infos[len(infos)-1]
	}
	s := New(cfg)
	// The history as saved: the commits the snapshot's record names, then
	// the journal's, whose trees are the rollback points.
	if len(infos) > 0 {
		s.history = s.history[:0]
		for i := range infos {
			if infos[i].ID == 0 {
				continue
			}
			s.history = append(s.history, historyEntry{info: infos[i], root: roots[i]})
		}
		if len(s.history) == 0 || s.history[len(s.history)-1].root != root {
			s.history = append(s.history, historyEntry{info: cfg.InitialCommit, root: root})
		}
		if len(s.history) > s.maxHist {
			s.history = s.history[len(s.history)-s.maxHist:]
		}
	}
	if err := s.rollBackLeftPending(dir); err != nil {
		s.Close()
		dir.Close()
		return nil, nil, err
	}
	return s, dir, nil
}

type journalElem struct {
	Name string            `json:"name"`
	Key  map[string]string `json:"key,omitempty"`
}

func toJournalPath(elems []*gnmi.PathElem) []journalElem {
	out := make([]journalElem, len(elems))
	for i, e := range elems {
		out[i] = journalElem{Name: e.Name, Key: e.Key}
	}
	return out
}

func fromJournalPath(elems []journalElem) *gnmi.Path {
	p := &gnmi.Path{}
	for _, e := range elems {
		p.Elem = append(p.Elem, &gnmi.PathElem{Name: e.Name, Key: e.Key})
	}
	return p
}

// PendingFile holds the rollback point of a confirmed commit not yet
// confirmed: RFC 7951 JSON of the configuration to restore, with the commit
// it belongs to.
const PendingFile = "confirmed-commit.json"

type pendingFile struct {
	ID         uint64          `json:"id"`
	Owner      string          `json:"owner"`
	PersistID  string          `json:"persist-id,omitempty"`
	Deadline   time.Time       `json:"deadline"`
	RollbackTo json.RawMessage `json:"rollback-to"`
}

// SavePending implements PendingPersister.
func (p *DiskPersister) SavePending(pc PendingCommit, rollbackTo *gen.Device) error {
	b, err := EmitJSON(rollbackTo)
	if err != nil {
		return fmt.Errorf("render the rollback point as JSON: %w", err)
	}
	out, err := json.Marshal(pendingFile{ID: pc.ID, Owner: pc.Owner.String(), PersistID: pc.PersistID, Deadline: pc.Deadline, RollbackTo: b})
	if err != nil {
		return err
	}
	return persist.WriteFileAtomic(filepath.Join(p.dir.Path(), PendingFile), out, 0o600)
}

// ClearPending implements PendingPersister.
func (p *DiskPersister) ClearPending() error {
	return persist.RemoveIfExists(filepath.Join(p.dir.Path(), PendingFile))
}

// rollBackLeftPending restores the rollback point of a confirmed commit
// that was still pending when the agent stopped (crash included): a
// restart ends the confirmation window (RFC 6241 8.4.1). It runs before any
// subsystem loads running.
func (s *Store) rollBackLeftPending(dir *persist.Dir) error {
	path := filepath.Join(dir.Path(), PendingFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var pf pendingFile
	root := &gen.Device{}
	if err := json.Unmarshal(b, &pf); err != nil {
		return fmt.Errorf("%s is damaged (%v); it holds the configuration to restore for an unconfirmed commit: repair or remove it to start", path, err)
	}
	if err := gen.Unmarshal(pf.RollbackTo, root); err != nil {
		return fmt.Errorf("%s is damaged (%v); it holds the configuration to restore for an unconfirmed commit: repair or remove it to start", path, err)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	tx := newTxFromTrees(s.runningTree(), root)
	if tx.Changed() {
		if _, err := s.apply(context.Background(), tx, CommitOptions{User: "system", Owner: api.Owner{Name: pf.Owner}, system: true,
			Comment: fmt.Sprintf("confirmed commit %d was not confirmed before the agent stopped", pf.ID)}, false); err != nil {
			return fmt.Errorf("roll back unconfirmed commit %d: %w", pf.ID, err)
		}
		s.mu.Lock()
		s.resetCandidateLocked()
		s.mu.Unlock()
	}
	s.log.Warn("rolled back a confirmed commit left unconfirmed when the agent stopped", "id", pf.ID, "owner", pf.Owner, "deadline", pf.Deadline)
	s.clearPendingFile()
	return nil
}
