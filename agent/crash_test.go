package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const crashChildEnv = "PKI_AGENT_CRASH_CHILD_DIR"

// TestCrashChild is the child side of TestCrashRecovery: it commits in a
// loop and prints "ACK url" after each commit returns.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("child process of TestCrashRecovery")
	}
	s, _, err := OpenStore(dir, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println("OPEN-ERROR", err)
		os.Exit(3)
	}
	run := os.Getenv("PKI_AGENT_CRASH_RUN")
	for i := 0; ; i++ {
		url := fmt.Sprintf("http://crash.example/%s-%d.crl", run, i)
		edits := []Edit{addCRL(t, url, 1+i%168)}
		if i%7 == 3 { // deletes too, so replay covers them
			edits = append(edits, Edit{Op: OpRemove, Path: mustPath(t, crlPath(fmt.Sprintf("http://crash.example/%s-%d.crl", run, i-1)))})
		}
		if i%7 == 3 {
			fmt.Printf("TRYDEL http://crash.example/%s-%d.crl\n", run, i-1)
		}
		tx := s.Begin(Running)
		if err := tx.Apply(edits...); err != nil {
			fmt.Println("EDIT-ERROR", err)
			os.Exit(3)
		}
		info, err := s.Commit(context.Background(), tx, CommitOptions{User: "crash"})
		if err != nil {
			fmt.Println("COMMIT-ERROR", err)
			os.Exit(3)
		}
		fmt.Printf("ID %d\n", info.ID)
		if i%7 == 3 {
			fmt.Printf("DEL http://crash.example/%s-%d.crl\n", run, i-1)
		}
		fmt.Printf("ACK %s\n", url)
	}
}

// TestCrashRecovery kills a committing child with SIGKILL at random points,
// many times, and checks that every acknowledged commit survives each
// restart, and the history with it: the last 64 commits, the last one
// acknowledged among them.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[string]int{}
	var lastID uint64
	rng := rand.New(rand.NewPCG(1, 2))
	const runs = 25
	for run := range runs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("PKI_AGENT_CRASH_RUN=%d", run))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it commit a random number of times (at least once), then kill.
		target := 1 + rng.IntN(40)
		n := 0
		deadline := time.After(20 * time.Second)
	wait:
		for n < target {
			select {
			case l, ok := <-lines:
				if !ok {
					break wait
				}
				if strings.HasPrefix(l, "ACK ") {
					n++
				}
				record(t, acked, l)
				fmt.Sscanf(l, "ID %d", &lastID)
			case <-deadline:
				break wait
			}
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill()
		for l := range lines {
			record(t, acked, l)
			fmt.Sscanf(l, "ID %d", &lastID)
		}
		cmd.Wait()

		s, d, err := OpenStore(dir, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatalf("run %d: restart failed: %v", run, err)
		}
		crls := s.Running().GetAuthority().GetCertificateRevocationList
		for url, want := range acked {
			if want == maybe {
				continue // deleted by a commit that may or may not have landed
			}
			if got := crls(url) != nil; got != (want == present) {
				t.Fatalf("run %d: %s present=%v, but its last acknowledged commit says otherwise (%d)", run, url, got, want)
			}
		}
		h := committed(s)
		if len(h) == 0 || h[len(h)-1].ID < lastID || len(h) != int(min(h[len(h)-1].ID, 64)) {
			t.Fatalf("run %d: history after restart %v; the last acknowledged commit is %d", run, ids(h), lastID)
		}
		for i := range h {
			if h[i].ID != h[len(h)-1].ID-uint64(len(h)-1-i) || h[i].User != "crash" {
				t.Fatalf("run %d: history after restart has a gap or a stranger: %+v", run, h)
			}
		}
		s.Close()
		d.Close()
	}
	if len(acked) < runs {
		t.Fatalf("only %d commits acknowledged over %d runs", len(acked), runs)
	}
}

// What the parent knows of a URL: acknowledged present, acknowledged
// deleted, or deleted by a commit not acknowledged yet.
const (
	present = iota + 1
	deleted
	maybe
)

func record(t *testing.T, acked map[string]int, line string) {
	switch {
	case strings.HasPrefix(line, "ACK "):
		acked[strings.TrimPrefix(line, "ACK ")] = present
	case strings.HasPrefix(line, "TRYDEL "):
		if acked[strings.TrimPrefix(line, "TRYDEL ")] == present {
			acked[strings.TrimPrefix(line, "TRYDEL ")] = maybe
		}
	case strings.HasPrefix(line, "DEL "):
		acked[strings.TrimPrefix(line, "DEL ")] = deleted
	case strings.Contains(line, "ERROR"):
		t.Fatalf("child: %s", line)
	}
}
