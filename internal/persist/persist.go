// Package persist is the agent's crash-safe storage. It keeps the running
// configuration in the agent's state directory as a snapshot file (RFC 7951 JSON, written to a
// temporary file, fsynced, renamed, and the directory fsynced) and a journal
// of the commits since, each record framed with its length and a CRC so a
// record torn by a crash is recognised. Records are opaque bytes here.
//
// The journal's first record names the snapshot it extends (its SHA-256):
// a crash inside Compact, after the new snapshot is in place but before the
// journal is emptied, leaves a journal that names the old snapshot, and Load
// drops it, since the new snapshot already holds its commits. Replaying it
// would put the subtrees its records touched back to older values beside the
// newer rest of the snapshot: a configuration never committed.
//
// It is also the agent's one durable-file helper (file.go): atomic writes,
// removals and renames that survive a crash, private directories, and the
// cleanup of what a crash left. The datastore, the PKI engine, its key
// stores and the northbound servers all write through it, so it lives under
// internal/ as a leaf (standard library only) that any layer may import.
package persist

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

const (
	// SnapshotFile holds running as RFC 7951 JSON.
	SnapshotFile = "running.json"
	// JournalFile holds the commits made since the snapshot.
	JournalFile = "running.journal"
	// MaxRecord bounds one journal record (a commit's changed subtrees).
	MaxRecord = 64 << 20
	headerLen = 8
	lockFile  = "running.lock"
)

// baseRecordPrefix starts the journal's first record, which binds the
// journal to its snapshot: {"pki-agent-journal-base":"sha256:HEX"}. It is a
// JSON object with no commit id or ops, so a journal record reader that
// does not know it (an older pki-agent) replays it as an empty record.
const baseRecordPrefix = `{"pki-agent-journal-base":"sha256:`

// baseRecord returns the journal's first record for a snapshot.
func baseRecord(snapshot []byte) []byte {
	sum := sha256.Sum256(snapshot)
	return []byte(baseRecordPrefix + hex.EncodeToString(sum[:]) + `"}`)
}

func isBaseRecord(rec []byte) bool { return bytes.HasPrefix(rec, []byte(baseRecordPrefix)) }

// frame returns rec with its length and checksum header.
func frame(rec []byte) []byte {
	buf := make([]byte, headerLen+len(rec))
	binary.BigEndian.PutUint32(buf[:4], uint32(len(rec)))
	binary.BigEndian.PutUint32(buf[4:8], crc32.Checksum(rec, crcTable))
	copy(buf[headerLen:], rec)
	return buf
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks a snapshot or journal that cannot be read back. The file
// is left as it is for the operator to inspect.
var ErrCorrupt = errors.New("corrupt")

// Dir is an open state directory. Its methods are safe for concurrent use.
type Dir struct {
	mu      sync.Mutex
	path    string
	snap    string // file names inside path: SnapshotFile, JournalFile
	jrnl    string // or those OpenJournal gives
	journal *os.File
	lock    *os.File
	records int
	bytes   int64
}

// Open opens (creating with mode 0700) the state directory and takes an
// exclusive lock on it, so two agents never share one. Once it holds the
// lock it removes the temporary files a crash inside WriteFileAtomic left
// in the directory itself; each store cleans its own subdirectory when it
// opens (CleanTemp).
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", path, err)
	}
	lf, err := os.OpenFile(filepath.Join(path, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory %s is not writable: %w", path, err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("state directory %s is in use by another pki-agent: %w", path, err)
	}
	if err := CleanTemp(path); err != nil {
		lf.Close()
		return nil, err
	}
	return &Dir{path: path, snap: SnapshotFile, jrnl: JournalFile, lock: lf}, nil
}

// OpenJournal opens another snapshot and journal pair, NAME.json and
// NAME.journal, in the directory path, for state other than the running
// configuration (the PKI engine's verdicts, say). It takes no lock: path
// is a directory the caller already holds through Open. Load, Append,
// Compact and Close work as for the running configuration.
func OpenJournal(path, name string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", path, err)
	}
	return &Dir{path: path, snap: name + ".json", jrnl: name + ".journal"}, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// Load reads the snapshot (nil when there is none) and the journal records
// after it. A record torn by a crash at the end of the journal is dropped
// (it was never acknowledged) and the journal truncated before it; damage
// anywhere else is an ErrCorrupt error naming the file, and nothing is
// rewritten. A journal that names another snapshot than the one on disk was
// left by a crash inside Compact: its records are in the snapshot already,
// so it is replaced by an empty journal for this snapshot. A journal with
// no base record (written before there was one) is replayed as it is.
func (d *Dir) Load() (snapshot []byte, records [][]byte, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	snapPath := filepath.Join(d.path, d.snap)
	snapshot, err = os.ReadFile(snapPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("read %s: %w", snapPath, err)
	}
	jpath := filepath.Join(d.path, d.jrnl)
	data, err := os.ReadFile(jpath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("read %s: %w", jpath, err)
	}
	records, good, err := parseJournal(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", jpath, err)
	}
	base := baseRecord(snapshot)
	switch {
	case len(records) > 0 && isBaseRecord(records[0]) && bytes.Equal(records[0], base):
		records = records[1:]
	case len(records) > 0 && isBaseRecord(records[0]), good == 0:
		// Stale (its snapshot was replaced) or empty: start a journal
		// bound to this snapshot.
		if err := WriteFileAtomic(jpath, frame(base), 0o600); err != nil {
			return nil, nil, err
		}
		records, data = nil, frame(base)
		good = len(data)
	}
	f, err := os.OpenFile(jpath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", jpath, err)
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("drop the torn last record of %s: %w", jpath, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("sync %s: %w", jpath, err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	if d.journal != nil {
		d.journal.Close()
	}
	d.journal, d.records, d.bytes = f, len(records), int64(good)
	if len(records) == 0 {
		records = nil
	}
	return snapshot, records, nil
}

// parseJournal returns the intact records and the offset where they end.
func parseJournal(data []byte) (records [][]byte, good int, err error) {
	off := 0
	for off < len(data) {
		rest := data[off:]
		if len(rest) < headerLen {
			return records, off, nil // torn header at the end
		}
		n := int(binary.BigEndian.Uint32(rest[:4]))
		sum := binary.BigEndian.Uint32(rest[4:8])
		if n > MaxRecord {
			if allZero(rest) {
				return records, off, nil
			}
			return nil, 0, fmt.Errorf("%w: record at byte %d claims %d bytes (limit %d)", ErrCorrupt, off, n, MaxRecord)
		}
		if len(rest) < headerLen+n {
			return records, off, nil // torn body at the end
		}
		body := rest[headerLen : headerLen+n]
		if crc32.Checksum(body, crcTable) != sum {
			if off+headerLen+n == len(data) {
				return records, off, nil // last record torn mid-write
			}
			return nil, 0, fmt.Errorf("%w: record at byte %d fails its checksum and more records follow it", ErrCorrupt, off)
		}
		records = append(records, bytes.Clone(body))
		off += headerLen + n
	}
	return records, off, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Append adds a record to the journal and fsyncs it. When Append returns
// nil the record survives a crash.
func (d *Dir) Append(rec []byte) error {
	if len(rec) > MaxRecord {
		return fmt.Errorf("journal record of %d bytes exceeds the %d byte limit", len(rec), MaxRecord)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.journal == nil {
		return errors.New("journal not loaded: call Load first")
	}
	buf := frame(rec)
	if _, err := d.journal.Write(buf); err != nil {
		// Cut off whatever part was written so the next record starts clean.
		_ = d.journal.Truncate(d.bytes)
		_, _ = d.journal.Seek(d.bytes, io.SeekStart)
		return fmt.Errorf("append to %s: %w", filepath.Join(d.path, d.jrnl), err)
	}
	if err := d.journal.Sync(); err != nil {
		_ = d.journal.Truncate(d.bytes)
		_, _ = d.journal.Seek(d.bytes, io.SeekStart)
		return fmt.Errorf("sync %s: %w", filepath.Join(d.path, d.jrnl), err)
	}
	d.records++
	d.bytes += int64(len(buf))
	return nil
}

// JournalSize reports the records and bytes in the journal.
func (d *Dir) JournalSize() (records int, bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.records, d.bytes
}

// Compact writes a new snapshot crash-safely and then empties the journal
// (leaving only its base record, which names the new snapshot). A crash in
// between leaves the old journal, which names the old snapshot, beside the
// new one; Load drops it.
func (d *Dir) Compact(snapshot []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := WriteFileAtomic(filepath.Join(d.path, d.snap), snapshot, 0o600); err != nil {
		return err
	}
	jpath := filepath.Join(d.path, d.jrnl)
	base := frame(baseRecord(snapshot))
	if err := WriteFileAtomic(jpath, base, 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(jpath, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", jpath, err)
	}
	if d.journal != nil {
		d.journal.Close()
	}
	if _, err := f.Seek(int64(len(base)), io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("reopen %s: %w", jpath, err)
	}
	d.journal, d.records, d.bytes = f, 0, int64(len(base))
	return nil
}

// Close closes the journal and releases the directory lock.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	if d.journal != nil {
		err = d.journal.Close()
		d.journal = nil
	}
	if d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
	return err
}
