package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var showCommands = []command{
	{words: "show certificate", args: "[NAME] [--detail]", summary: "managed certificates; --detail decodes them like openssl x509 -text, with status, chain and PEM", run: showCertificate},
	{words: "show certificate crl", args: "[URL] [--revoked]", summary: "CRL sources and their state; --revoked lists the revoked serials of the CRL at URL", run: showCRL},
	{words: "show trusted-ca", args: "[NAME]", summary: "trusted CA chains, their status and certificates", run: showTrustedCA},
	{words: "show keys", args: "[NAME]", summary: "the device's keys and their public keys (like show crypto key mypubkey)", run: showKeys},
	{words: "show alarms", summary: "active alarms", run: showAlarms},
	{words: "show stats security", summary: "security counters (CSR, import, CRL fetch and ingestion, certificate and peer events)", run: showStats},
	{words: "show ca-profile", args: "[NAME]", summary: "CA profiles for enrollment and their state (like SR OS show certificate ca-profile)", run: showCAProfile},
	{words: "show enrollment", args: "[NAME]", summary: "client certificates that enroll and renew themselves, and where each stands", run: showEnrollment},
	{words: "show peers", args: "[ROUTER]", summary: "peer validation state per router", run: showPeers},
	{words: "show audit", args: "[--since DURATION|TIME] [--type PREFIX]", summary: "audit events from STATE-DIR/audit.log (needs --state-dir: the agent serves no audit path)", run: showAudit},
	{words: "show commits", args: "[--since DURATION|TIME]", summary: "the commit history the agent keeps (/system/commit-history), with the ids 'config rollback N' takes", run: showCommits},
}

// view is what a show command prints: data for -o json|yaml, a table (or
// detail view) for -o table.
type view struct {
	data   any
	render func(w io.Writer, width int)
}

func (e *env) emit(v view) error {
	switch e.output {
	case "json":
		b, err := json.MarshalIndent(v.data, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	case "yaml":
		// Through JSON, so the names are the YANG leaf names of -o json.
		b, err := json.Marshal(v.data)
		if err != nil {
			return err
		}
		var g any
		if err := json.Unmarshal(b, &g); err != nil {
			return err
		}
		out, err := yaml.Marshal(g)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(out)
		return err
	}
	v.render(e.stdout, e.width)
	return nil
}

// getInto reads path over gNMI and decodes the list or container named
// member of its value (or, member "", the value) into out, module
// prefixes dropped.
func (e *env) getInto(ctx context.Context, path, member string, out any) error {
	if err := e.needPassword(); err != nil {
		return err
	}
	m, err := e.c.get(ctx, path)
	if err != nil {
		return err
	}
	var v any = m
	if member != "" {
		var ok bool
		if v, ok = m[member]; !ok {
			return nil
		}
	}
	b, err := json.Marshal(stripPrefixes(v))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// stripPrefixes drops "module:" from every member name of a JSON value.
func stripPrefixes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, y := range x {
			out[stripModule(k)] = stripPrefixes(y)
		}
		return out
	case []any:
		for i := range x {
			x[i] = stripPrefixes(x[i])
		}
	}
	return v
}

// jsonUint reads a uint64 leaf, which RFC 7951 sends as a string.
type jsonUint uint64

func (u *jsonUint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseUint(s, 10, 64)
	*u = jsonUint(n)
	return err
}

func (u jsonUint) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatUint(uint64(u), 10)), nil
}

// orDash fills an empty cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// --- show alarms

type alarm struct {
	ID         string `json:"id"`
	Resource   string `json:"resource"`
	Category   string `json:"category"`
	Severity   string `json:"severity"`
	Text       string `json:"text"`
	TimeRaised string `json:"time-raised"`
}

var severityRank = map[string]int{"critical": 0, "major": 1, "minor": 2}

func showAlarms(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(flag.NewFlagSet("show alarms", flag.ContinueOnError), args, 0, 0); err != nil {
		return err
	}
	var alarms []alarm
	if err := e.getInto(ctx, "/alarms", "alarm", &alarms); err != nil {
		return err
	}
	sortAlarms(alarms)
	return e.emit(view{data: map[string]any{"alarm": alarms}, render: func(w io.Writer, width int) { alarmTable(alarms).render(w, width) }})
}

func sortAlarms(a []alarm) {
	slices.SortStableFunc(a, func(x, y alarm) int {
		if d := severityRank[x.Severity] - severityRank[y.Severity]; d != 0 {
			return d
		}
		return strings.Compare(x.ID, y.ID)
	})
}

func alarmTable(alarms []alarm) *table {
	t := &table{headers: []string{"SEVERITY", "CATEGORY", "RESOURCE", "RAISED", "TEXT"}}
	for _, a := range alarms {
		t.add(a.Severity, a.Category, a.Resource, a.TimeRaised, a.Text)
	}
	return t
}

// --- show stats security

type counterPair struct {
	Success jsonUint `json:"success"`
	Failure jsonUint `json:"failure"`
}

type eventCounters struct {
	Expired jsonUint `json:"expired"`
	Invalid jsonUint `json:"invalid"`
	Revoked jsonUint `json:"revoked"`
}

type securityStats struct {
	CSR               counterPair   `json:"csr"`
	CertificateImport counterPair   `json:"certificate-import"`
	CRLFetch          counterPair   `json:"crl-fetch"`
	CRLIngestion      counterPair   `json:"crl-ingestion"`
	Certificate       eventCounters `json:"certificate"`
	PeerCertificate   eventCounters `json:"peer-certificate"`
}

func showStats(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(flag.NewFlagSet("show stats security", flag.ContinueOnError), args, 0, 0); err != nil {
		return err
	}
	var st securityStats
	if err := e.getInto(ctx, "/stats/security", "", &st); err != nil {
		return err
	}
	return e.emit(view{data: map[string]any{"security": st}, render: func(w io.Writer, width int) { statsTable(st).render(w, width) }})
}

// statsTable names the counters as SSR's show stats security does.
func statsTable(s securityStats) *table {
	t := &table{headers: []string{"COUNTER", "SUCCESS", "FAILURE"}}
	pair := func(name string, p counterPair) {
		t.add(name, fmt.Sprint(p.Success), fmt.Sprint(p.Failure))
	}
	pair("CSR", s.CSR)
	pair("certificate import", s.CertificateImport)
	pair("CRL fetch", s.CRLFetch)
	pair("CRL ingestion", s.CRLIngestion)
	t2 := &table{headers: []string{"EVENT", "EXPIRED", "INVALID", "REVOKED"}}
	ev := func(name string, c eventCounters) {
		t2.add(name, fmt.Sprint(c.Expired), fmt.Sprint(c.Invalid), fmt.Sprint(c.Revoked))
	}
	ev("certificate", s.Certificate)
	ev("peer certificate", s.PeerCertificate)
	return &table{parts: []*table{t, t2}}
}

// --- show peers

type router struct {
	Name              string `json:"name"`
	PeerValidation    bool   `json:"peer-validation"`
	FailureAction     string `json:"certificate-failure-action"`
	PeeringCommonName string `json:"peering-common-name"`
	Peer              []peer `json:"peer"`
}

type peer struct {
	Name       string `json:"name"`
	Identifier string `json:"identifier"`
	State      struct {
		Status        string `json:"status"`
		Reason        string `json:"reason"`
		LastValidated string `json:"last-validated"`
	} `json:"state"`
}

func showPeers(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("show peers", flag.ContinueOnError), args, 0, 1)
	if err != nil {
		return err
	}
	var routers []router
	if err := e.getInto(ctx, "/authority", "router", &routers); err != nil {
		return err
	}
	if len(pos) == 1 {
		routers = slices.DeleteFunc(routers, func(r router) bool { return r.Name != pos[0] })
		if len(routers) == 0 {
			return userErrorf("no router %q is configured", clip(pos[0]))
		}
	}
	slices.SortFunc(routers, func(a, b router) int { return strings.Compare(a.Name, b.Name) })
	return e.emit(view{data: map[string]any{"router": routers}, render: func(w io.Writer, width int) { peerTable(routers).render(w, width) }})
}

func peerTable(routers []router) *table {
	t := &table{headers: []string{"ROUTER", "VALIDATION", "PEER", "IDENTIFIER", "STATUS", "REASON", "LAST VALIDATED"}}
	for _, r := range routers {
		mode := "off"
		if r.PeerValidation {
			mode = orDash(r.FailureAction)
		}
		if len(r.Peer) == 0 {
			t.add(r.Name, mode, "-", "-", "-", "-", "-")
		}
		slices.SortFunc(r.Peer, func(a, b peer) int { return strings.Compare(a.Name, b.Name) })
		for _, p := range r.Peer {
			t.add(r.Name, mode, p.Name, orDash(p.Identifier), orDash(p.State.Status), orDash(p.State.Reason), orDash(p.State.LastValidated))
		}
	}
	return t
}
