package persist

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func open(t *testing.T, dir string) (*Dir, []byte, [][]byte) {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, recs, err := d.Load()
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	return d, snap, recs
}

func appendAll(t *testing.T, d *Dir, recs ...string) {
	t.Helper()
	for _, r := range recs {
		if err := d.Append([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
}

func strs(recs [][]byte) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, string(r))
	}
	return out
}

func TestJournalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	d, snap, recs := open(t, dir)
	if snap != nil || len(recs) != 0 {
		t.Fatalf("fresh dir: snapshot %q, records %q", snap, strs(recs))
	}
	appendAll(t, d, `{"id":1}`, `{"id":2}`)
	if n, _ := d.JournalSize(); n != 2 {
		t.Fatalf("JournalSize records = %d, want 2", n)
	}
	d.Close()

	d, _, recs = open(t, dir)
	if got := strings.Join(strs(recs), " "); got != `{"id":1} {"id":2}` {
		t.Fatalf("records after restart: %s", got)
	}
	if err := d.Compact([]byte(`{"snap":3}`)); err != nil {
		t.Fatal(err)
	}
	appendAll(t, d, `{"id":4}`)
	d.Close()

	d, snap, recs = open(t, dir)
	defer d.Close()
	if string(snap) != `{"snap":3}` || strings.Join(strs(recs), " ") != `{"id":4}` {
		t.Fatalf("after compaction: snapshot %q, records %q", snap, strs(recs))
	}
	if n, _ := d.JournalSize(); n != 1 {
		t.Fatalf("JournalSize records = %d, want 1", n)
	}
}

// A crash inside Compact after the new snapshot is renamed into place but
// before the journal is emptied leaves the old journal beside the new
// snapshot. Its records predate the snapshot, which holds them already:
// replaying them would set the subtrees they touched back to older values
// beside the newer rest of the snapshot, a configuration never committed.
func TestCrashInsideCompactDropsTheOldJournal(t *testing.T) {
	dir := t.TempDir()
	d, _, _ := open(t, dir)
	if err := d.Compact([]byte(`{"proxy":"A"}`)); err != nil {
		t.Fatal(err)
	}
	appendAll(t, d, `{"proxy":"B"}`)
	// Compact of {"proxy":"C","router":"zz"}, cut after its first step.
	if err := WriteFileAtomic(filepath.Join(dir, SnapshotFile), []byte(`{"proxy":"C","router":"zz"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Close()

	d, snap, recs := open(t, dir)
	if string(snap) != `{"proxy":"C","router":"zz"}` || len(recs) != 0 {
		t.Fatalf("snapshot %q with records %q: the journal older than the snapshot was replayed", snap, strs(recs))
	}
	// The journal now belongs to the new snapshot: later commits replay.
	appendAll(t, d, `{"proxy":"D"}`)
	d.Close()
	d, snap, recs = open(t, dir)
	defer d.Close()
	if string(snap) != `{"proxy":"C","router":"zz"}` || strings.Join(strs(recs), " ") != `{"proxy":"D"}` {
		t.Fatalf("after restart: snapshot %q, records %q", snap, strs(recs))
	}
}

// The same with no snapshot before: the first Compact of a state directory
// interrupted after its snapshot.
func TestCrashInsideFirstCompactDropsTheOldJournal(t *testing.T) {
	dir := t.TempDir()
	d, _, _ := open(t, dir)
	appendAll(t, d, `{"proxy":"A"}`, `{"proxy":"B"}`)
	if err := WriteFileAtomic(filepath.Join(dir, SnapshotFile), []byte(`{"proxy":"C","router":"zz"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, _, recs := open(t, dir)
	defer d.Close()
	if len(recs) != 0 {
		t.Fatalf("records %q of the journal older than the snapshot were replayed", strs(recs))
	}
}

// A journal written before journals named their snapshot is replayed as it
// is, torn last record dropped.
func TestJournalWithoutBaseRecordIsReplayed(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	for _, r := range []string{`{"id":1}`, `{"id":2}`} {
		buf.Write(frame([]byte(r)))
	}
	buf.Write([]byte{0, 0, 1, 0, 1, 2}) // torn
	os.WriteFile(filepath.Join(dir, SnapshotFile), []byte(`{"snap":0}`), 0o600)
	os.WriteFile(filepath.Join(dir, JournalFile), buf.Bytes(), 0o600)
	d, snap, recs := open(t, dir)
	if string(snap) != `{"snap":0}` || strings.Join(strs(recs), " ") != `{"id":1} {"id":2}` {
		t.Fatalf("snapshot %q, records %q", snap, strs(recs))
	}
	appendAll(t, d, `{"id":3}`)
	d.Close()
	d, _, recs = open(t, dir)
	defer d.Close()
	if got := strings.Join(strs(recs), " "); got != `{"id":1} {"id":2} {"id":3}` {
		t.Fatalf("records after append: %s", got)
	}
}

func TestCorruptJournalNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	d, _, _ := open(t, dir)
	appendAll(t, d, `{"id":1}`, `{"id":2}`)
	d.Close()
	jpath := filepath.Join(dir, JournalFile)
	b, _ := os.ReadFile(jpath)
	// Flip a byte of the first commit record (after the base record).
	first := headerLen + int(binary.BigEndian.Uint32(b[:4]))
	b[first+headerLen+1] ^= 0xff
	os.WriteFile(jpath, b, 0o600)
	d2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	_, _, err = d2.Load()
	if err == nil || !strings.Contains(err.Error(), jpath) || !strings.Contains(err.Error(), ErrCorrupt.Error()) {
		t.Fatalf("err = %v", err)
	}
	if after, _ := os.ReadFile(jpath); !bytes.Equal(after, b) {
		t.Fatal("the corrupt journal was rewritten")
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	d, _, _ := open(t, dir)
	defer d.Close()
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open: %v", err)
	}
}

// TestOpenJournalIsItsOwnPair: a journal opened by name beside the running
// configuration uses NAME.json and NAME.journal, never the running files,
// survives a reopen and a compaction, and names its file when damaged.
func TestOpenJournalIsItsOwnPair(t *testing.T) {
	dir := t.TempDir()
	run, _, _ := open(t, dir)
	defer run.Close()
	appendAll(t, run, "running-1")

	j, err := OpenJournal(dir, "pki-state")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Load(); err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, "a", "b")
	if err := j.Compact([]byte("snap-ab")); err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, "c")
	j.Close()

	j, _ = OpenJournal(dir, "pki-state")
	snap, recs, err := j.Load()
	if err != nil || string(snap) != "snap-ab" || strings.Join(strs(recs), ",") != "c" {
		t.Fatalf("reopened: %q %q %v", snap, strs(recs), err)
	}
	j.Close()
	for _, name := range []string{"pki-state.json", "pki-state.journal"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, fi, err)
		}
	}
	if _, recs, _ := run.Load(); strings.Join(strs(recs), ",") != "running-1" {
		t.Fatalf("running journal touched: %q", strs(recs))
	}

	// A record damaged before the last one is an error naming the file.
	jpath := filepath.Join(dir, "pki-state.journal")
	j, _ = OpenJournal(dir, "pki-state")
	j.Load()
	appendAll(t, j, "d")
	j.Close()
	data, _ := os.ReadFile(jpath)
	data[len(data)-len("d")-headerLen-len("c")] ^= 0xff // the body of "c"
	os.WriteFile(jpath, data, 0o600)
	j, _ = OpenJournal(dir, "pki-state")
	if _, _, err := j.Load(); err == nil || !strings.Contains(err.Error(), jpath) {
		t.Fatalf("damaged journal: %v", err)
	}
}
