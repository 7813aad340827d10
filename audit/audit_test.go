package audit

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestWriteAppendsJSONLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p, "router1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Write(Event{Time: time.Unix(0, 0).UTC(), User: "admin", Type: "system.generate_csr", Description: "csr", Detail: map[string]any{"common_name": "r1"}, Permitted: true}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	l.Close()
	f, _ := os.Open(p)
	defer f.Close()
	st, _ := f.Stat()
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Node != "router1" || ev.Type != "system.generate_csr" {
			t.Fatalf("line %d: %v %+v", n, err, ev)
		}
	}
	if n != 20 {
		t.Fatalf("%d lines", n)
	}
}
