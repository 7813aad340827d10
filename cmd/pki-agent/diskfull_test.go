package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// smallTmpfs mounts a tmpfs of size bytes (root only; CI runs as root) and
// returns its path; it is unmounted at the end of the test.
func smallTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			return
		}
	}
}

// TestDiskFullCommitPublishesNothing: over the real binary with its state
// directory on a small tmpfs that fills up, a NETCONF commit that cannot
// be saved fails, and a subscribed session sees nothing of it (no
// certificate-missing alarm raised and cleared, no config change). Once
// there is room again, the next commit's config change comes first, then
// its alarm.
func TestDiskFullCommitPublishesNothing(t *testing.T) {
	mnt := smallTmpfs(t, 8<<20)
	p := runAgentBinary(t, filepath.Join(mnt, "state"))
	addr := logAttr(p.logged(t, "serving NETCONF"), "addr")
	watcher, writer := dialNETCONF(t, addr), dialNETCONF(t, addr)
	if r := watcher.rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`); !strings.Contains(r, "<ok/>") {
		t.Fatalf("create-subscription: %s", r)
	}
	notes := make(chan string, 100)
	go func() {
		defer close(notes)
		for {
			m, err := watcher.fr.ReadMessage()
			if err != nil {
				return
			}
			notes <- string(m)
		}
	}()

	const ns = `xmlns="urn:pkiagent:yang:pki-authority"`
	// Enough entries that the journal record needs fresh pages.
	var b strings.Builder
	for i := range 60 {
		fmt.Fprintf(&b, "<client-certificate><name>full-disk-%02d-%s</name></client-certificate>", i, strings.Repeat("x", 40))
	}
	if r := writer.rpc(`<edit-config><target><candidate/></target><config><authority ` + ns + `>` + b.String() + `</authority></config></edit-config>`); !strings.Contains(r, "<ok/>") {
		t.Fatalf("edit-config: %s", r)
	}
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	if r := writer.rpc(`<commit/>`); !strings.Contains(r, "rpc-error") || !strings.Contains(r, "no space left") {
		t.Fatalf("commit on a full disk: %s", r)
	}
	os.Remove(filler)
	for _, op := range []string{
		`<discard-changes/>`,
		`<edit-config><target><candidate/></target><config><authority ` + ns + `><client-certificate><name>saved</name></client-certificate></authority></config></edit-config>`,
		`<commit/>`,
	} {
		if r := writer.rpc(op); !strings.Contains(r, "<ok/>") {
			t.Fatalf("%s: %s", op, r)
		}
	}
	var seen []string
	timeout := time.After(20 * time.Second)
	for {
		select {
		case n, ok := <-notes:
			if !ok {
				t.Fatalf("subscription ended; seen:\n%s", strings.Join(seen, "\n"))
			}
			if strings.Contains(n, "full-disk-") {
				t.Fatalf("the commit that failed reached a subscriber:\n%s", n)
			}
			switch {
			case strings.Contains(n, "netconf-config-change"):
				seen = append(seen, "config")
			case strings.Contains(n, "certificate-missing:saved"):
				seen = append(seen, "alarm")
			default:
				continue
			}
			if len(seen) == 2 {
				if seen[0] != "config" || seen[1] != "alarm" {
					t.Fatalf("notifications %v, want the config change, then the alarm", seen)
				}
				return
			}
		case <-timeout:
			t.Fatalf("the saved commit's notifications did not arrive; seen %v\n%s", seen, p.log())
		}
	}
}
