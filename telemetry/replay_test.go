package telemetry

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func values(recs []Record[int]) []int {
	var out []int
	for _, r := range recs {
		out = append(out, r.V)
	}
	return out
}

func TestReplay(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := NewReplay[int](3)
	live := r.Next()
	_, _, wake := r.From(live)
	r.Add(t0, 0)
	select {
	case <-wake:
	default:
		t.Fatal("Add did not wake the readers")
	}
	for i := 1; i < 5; i++ {
		r.Add(t0.Add(time.Duration(i)*time.Second), i)
	}
	// The buffer holds the last 3: a reader at 0 skips 0 and 1.
	recs, next, _ := r.From(0)
	if diff := cmp.Diff([]int{2, 3, 4}, values(recs)); diff != "" {
		t.Fatalf("-want +got:\n%s", diff)
	}
	if next != 5 || recs[0].Seq != 2 || !recs[0].Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("next %d, first %+v", next, recs[0])
	}
	if recs, next, _ := r.From(4); !cmp.Equal([]int{4}, values(recs)) || next != 5 {
		t.Fatalf("From(4) = %v, %d", values(recs), next)
	}
	if recs, next, _ := r.From(9); len(recs) != 0 || next != 5 {
		t.Fatalf("From past the end = %v, %d", values(recs), next)
	}
}
