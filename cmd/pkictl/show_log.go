package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/audit"
)

// --- show certificate crl

type crlSource struct {
	URL string `json:"url"`
	// Source is configured (certificate-revocation-list) or learned (from
	// a certificate's CRL distribution point).
	Source string `json:"source"`
	State  struct {
		Issuer              string   `json:"issuer"`
		ThisUpdate          string   `json:"this-update"`
		NextUpdate          string   `json:"next-update"`
		Entries             jsonUint `json:"entries"`
		SizeBytes           jsonUint `json:"size-bytes"`
		LastAttempt         string   `json:"last-attempt"`
		LastSuccess         string   `json:"last-success"`
		LastError           string   `json:"last-error"`
		ConsecutiveFailures jsonUint `json:"consecutive-failures"`
		NextAttempt         string   `json:"next-attempt"`
	} `json:"state"`
}

// revoked is one entry of a CRL as --revoked lists it.
type revoked struct {
	Serial string `json:"serial"`
	Time   string `json:"revocation-time"`
	Reason int    `json:"reason,omitempty"`
}

// maxCRLBytes bounds what --revoked downloads.
const maxCRLBytes = 64 << 20

func showCRL(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("show certificate crl", flag.ContinueOnError)
	listRevoked := fs.Bool("revoked", false, "list the revoked serials of the CRL at URL (pkictl fetches it from URL: the agent serves counts, not lists)")
	pos, err := e.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	if *listRevoked && len(pos) == 0 {
		return usagef("show certificate crl --revoked: give the CRL's URL")
	}
	var auth struct {
		Configured  []crlSource `json:"certificate-revocation-list"`
		CRLSettings struct {
			Learned []crlSource `json:"learned-source"`
		} `json:"crl-settings"`
	}
	if err := e.getInto(ctx, "/authority", "", &auth); err != nil {
		return err
	}
	var srcs []crlSource
	for _, l := range []struct {
		kind string
		srcs []crlSource
	}{{"configured", auth.Configured}, {"learned", auth.CRLSettings.Learned}} {
		for _, s := range l.srcs {
			if !slices.ContainsFunc(srcs, func(x crlSource) bool { return x.URL == s.URL }) {
				s.Source = l.kind
				srcs = append(srcs, s)
			}
		}
	}
	slices.SortFunc(srcs, func(a, b crlSource) int { return strings.Compare(a.URL, b.URL) })
	if len(pos) == 1 {
		srcs = slices.DeleteFunc(srcs, func(c crlSource) bool { return c.URL != pos[0] })
		if len(srcs) == 0 {
			return userErrorf("no CRL source %q is configured (show certificate crl lists them)", clip(pos[0]))
		}
	}
	if !*listRevoked {
		return e.emit(view{data: map[string]any{"certificate-revocation-list": srcs}, render: func(w io.Writer, width int) {
			if len(pos) == 1 {
				crlDetail(srcs[0]).render(w, width)
				return
			}
			crlTable(srcs).render(w, width)
		}})
	}
	list, err := fetchRevoked(ctx, pos[0])
	if err != nil {
		return err
	}
	return e.emit(view{data: map[string]any{"url": pos[0], "revoked": list}, render: func(w io.Writer, width int) {
		crlDetail(srcs[0]).render(w, width)
		fmt.Fprintln(w)
		revokedTable(list).render(w, width)
	}})
}

func crlTable(srcs []crlSource) *table {
	t := &table{headers: []string{"URL", "SOURCE", "ISSUER", "THIS UPDATE", "NEXT UPDATE", "ENTRIES", "LAST ERROR"}}
	for _, s := range srcs {
		t.add(s.URL, s.Source, orDash(s.State.Issuer), orDash(s.State.ThisUpdate), orDash(s.State.NextUpdate), fmt.Sprint(s.State.Entries), orDash(s.State.LastError))
	}
	return t
}

// crlDetail is one CRL source like IOS XR's show crypto ca crls entry.
func crlDetail(s crlSource) *fields {
	f := &fields{}
	f.heading("CRL Entry")
	f.add("Issuer", orDash(s.State.Issuer))
	f.add("Last Update", orDash(s.State.ThisUpdate))
	f.add("Next Update", orDash(s.State.NextUpdate))
	f.add("CRL Distribution Point", s.URL)
	f.add("Source", s.Source)
	f.add("Entries", fmt.Sprint(s.State.Entries))
	f.add("Size", fmt.Sprintf("%d bytes", s.State.SizeBytes))
	f.add("Last attempt", orDash(s.State.LastAttempt))
	f.add("Last success", orDash(s.State.LastSuccess))
	f.add("Last error", orDash(s.State.LastError))
	f.add("Failures in a row", fmt.Sprint(s.State.ConsecutiveFailures))
	f.add("Next attempt", orDash(s.State.NextAttempt))
	return f
}

func revokedTable(list []revoked) *table {
	t := &table{headers: []string{"SERIAL", "REVOKED", "REASON"}}
	for _, r := range list {
		reason := "-"
		if r.Reason != 0 {
			reason = fmt.Sprint(r.Reason)
		}
		t.add(r.Serial, r.Time, reason)
	}
	return t
}

// fetchRevoked reads the CRL at u (http, https or file, as the agent
// does) and lists its entries. It only lists: the agent is the one that
// verifies and applies a CRL.
func fetchRevoked(ctx context.Context, u string) ([]revoked, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, userErrorf("CRL URL %q does not parse", clip(u))
	}
	var body io.Reader
	switch pu.Scheme {
	case "file":
		f, err := os.Open(pu.Path)
		if err != nil {
			return nil, userErrorf("CRL %s: %v", clip(u), errors.Unwrap(err))
		}
		defer f.Close()
		body = f
	case "http", "https":
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, userErrorf("CRL %s: %s", clip(u), lastClause(err.Error()))
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, userErrorf("CRL %s: %s", clip(u), resp.Status)
		}
		body = resp.Body
	default:
		return nil, userErrorf("CRL URL %q: pkictl reads http, https and file URLs", clip(u))
	}
	b, err := io.ReadAll(io.LimitReader(body, maxCRLBytes+1))
	if err != nil {
		return nil, userErrorf("CRL %s: %v", clip(u), err)
	}
	if len(b) > maxCRLBytes {
		return nil, userErrorf("CRL %s: larger than %d MiB", clip(u), maxCRLBytes>>20)
	}
	if p, _ := pem.Decode(b); p != nil {
		b = p.Bytes
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, userErrorf("CRL %s: not a CRL (%v)", clip(u), err)
	}
	out := make([]revoked, 0, len(crl.RevokedCertificateEntries))
	for _, r := range crl.RevokedCertificateEntries {
		out = append(out, revoked{Serial: r.SerialNumber.Text(16), Time: r.RevocationTime.UTC().Format(time.RFC3339), Reason: r.ReasonCode})
	}
	return out, nil
}

// --- show audit: the audit log is a file of the agent's state directory
// (SPEC.md), not served over gNMI or NETCONF.

// parseSince reads --since: a duration back from now, or an RFC 3339 time
// (zero when since is empty).
func parseSince(since string) (time.Time, error) {
	if since == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(since); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, since); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since %q: want a duration such as 1h or a time such as 2026-12-01T10:00:00Z", clip(since))
}

func (e *env) auditEvents(since string, typePrefix string) ([]audit.Event, error) {
	if e.conn.stateDir == "" {
		return nil, userErrorf("the audit log is the file STATE-DIR/audit.log on the agent's host (it is not served over gNMI or NETCONF): give --state-dir")
	}
	from, err := parseSince(since)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(e.conn.stateDir, "audit.log")
	f, err := os.Open(path)
	if err != nil {
		return nil, userErrorf("%s: %v", path, errors.Unwrap(err))
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev audit.Event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue // a torn last line after a crash
		}
		if ev.Time.Before(from) || !strings.HasPrefix(ev.Type, typePrefix) {
			continue
		}
		out = append(out, ev)
	}
	return out, sc.Err()
}

func showAudit(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("show audit", flag.ContinueOnError)
	since := fs.String("since", "", "only events since this long ago (1h) or this time (RFC 3339)")
	typ := fs.String("type", "", "only events whose type starts with this, e.g. system.generate_csr or system.")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	evs, err := e.auditEvents(*since, *typ)
	if err != nil {
		return err
	}
	return e.emit(view{data: map[string]any{"event": evs}, render: func(w io.Writer, width int) { auditView(evs, w, width) }})
}

// auditView prints events as SSR's audit log does: a ruled title, then
// the fields.
func auditView(evs []audit.Event, w io.Writer, width int) {
	rule := strings.Repeat("=", max(min(width, 100), 40))
	if width == 0 {
		rule = strings.Repeat("=", 80)
	}
	for _, ev := range evs {
		fmt.Fprintln(w, rule)
		fmt.Fprintf(w, " %s %s\n", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Description)
		fmt.Fprintln(w, rule)
		f := &fields{}
		f.add("Type", ev.Type)
		f.add("Node", ev.Node)
		f.add("User", orDash(ev.User))
		if len(ev.Detail) > 0 {
			b, _ := json.Marshal(ev.Detail)
			f.add("Json Event Detail", string(b))
		}
		f.add("Permitted", map[bool]string{true: "True", false: "False"}[ev.Permitted])
		f.render(w, width)
	}
}
