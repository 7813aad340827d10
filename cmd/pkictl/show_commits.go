package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// --- show commits: /system/commit-history (module pki-agent-system).

type commitRecord struct {
	ID                jsonUint `json:"id"`
	Time              string   `json:"time"`
	User              string   `json:"user"`
	Owner             string   `json:"owner,omitempty"`
	Comment           string   `json:"comment,omitempty"`
	Changes           int      `json:"changes"`
	ConfirmedPending  bool     `json:"confirmed-pending"`
	RollbackAvailable bool     `json:"rollback-available"`
}

func showCommits(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("show commits", flag.ContinueOnError)
	since := fs.String("since", "", "only commits since this long ago (1h) or this time (RFC 3339)")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	from, err := parseSince(*since)
	if err != nil {
		return err
	}
	var all []commitRecord
	if err := e.getInto(ctx, "/system/commit-history", "commit", &all); err != nil {
		return err
	}
	var commits []commitRecord
	for _, c := range all {
		if t, err := time.Parse(time.RFC3339Nano, c.Time); from.IsZero() || err == nil && !t.Before(from) {
			commits = append(commits, c)
		}
	}
	slices.SortFunc(commits, func(a, b commitRecord) int { return cmp.Compare(a.ID, b.ID) })
	return e.emit(view{data: map[string]any{"commit": commits}, render: func(w io.Writer, width int) { commitTable(commits).render(w, width) }})
}

// commitTable lists commits oldest first; FLAGS says "pending" for a
// confirmed commit not yet confirmed and "no-rollback" for a commit whose
// configuration is no longer kept.
func commitTable(cs []commitRecord) *table {
	t := &table{headers: []string{"ID", "TIME", "USER", "SESSION", "CHANGES", "FLAGS", "COMMENT"}}
	for _, c := range cs {
		when := c.Time
		if tm, err := time.Parse(time.RFC3339Nano, c.Time); err == nil {
			when = tm.UTC().Format(time.RFC3339)
		}
		var flags []string
		if c.ConfirmedPending {
			flags = append(flags, "pending")
		}
		if !c.RollbackAvailable {
			flags = append(flags, "no-rollback")
		}
		t.add(strconv.FormatUint(uint64(c.ID), 10), when, c.User, orDash(c.Owner), fmt.Sprint(c.Changes), orDash(strings.Join(flags, ",")), orDash(c.Comment))
	}
	return t
}
