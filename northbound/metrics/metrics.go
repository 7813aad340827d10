// Package metrics serves the agent's counters, alarms and certificate and
// CRL health at /metrics in the Prometheus text exposition format (0.0.4),
// read from the datastore's state view at every scrape. It holds no state of
// its own, so a scrape always agrees with gNMI Get and NETCONF get.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/gen"
)

// StateReader is the part of agent.Store this package needs.
type StateReader interface {
	State() (*gen.Device, error)
}

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler answers GET /metrics from st. A state read that fails is a 500
// with the reason, so a scrape never shows stale or partial numbers.
func Handler(st StateReader, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "metrics: only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		dev, err := st.State()
		if err != nil {
			log.Error("metrics: reading state failed", "err", err)
			http.Error(w, "metrics: reading state failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		bw := bufio.NewWriter(w)
		Write(bw, dev)
		bw.Flush()
	})
}

// Write renders dev's state as metric families, sorted by name.
func Write(w io.Writer, dev *gen.Device) {
	var e encoder
	writeCounters(&e, dev.GetStats().GetSecurity())
	writeAlarms(&e, dev.GetAlarms())
	writeCertificates(&e, dev.GetCertificates())
	writeCRLs(&e, dev.GetAuthority())
	writePeers(&e, dev.GetAuthority())
	writeSyslog(&e, dev.GetSystem().GetSyslog().GetState())
	e.flush(w)
}

// writeSyslog renders the syslog sender's counters, when it runs.
func writeSyslog(e *encoder, s *gen.PkiAgentSystem_System_Syslog_State) {
	if s == nil {
		return
	}
	f := e.family("pkiagent_syslog_messages_total", "counter", "Syslog messages, sent or dropped (receiver down or slow).")
	f.add(float64(s.GetSent()), "result", "sent")
	f.add(float64(s.GetDropped()), "result", "dropped")
}

func writeCounters(e *encoder, s *gen.PkiAuthority_Stats_Security) {
	pair := func(name, help string, success, failure uint64) {
		f := e.family(name, "counter", help)
		f.add(float64(success), "result", "success")
		f.add(float64(failure), "result", "failure")
	}
	pair("pkiagent_csr_total", "Certificate signing requests generated, by result.",
		s.GetCsr().GetSuccess(), s.GetCsr().GetFailure())
	pair("pkiagent_certificate_import_total", "Certificate imports, by result.",
		s.GetCertificateImport().GetSuccess(), s.GetCertificateImport().GetFailure())
	pair("pkiagent_crl_fetch_total", "CRL fetches, by result.",
		s.GetCrlFetch().GetSuccess(), s.GetCrlFetch().GetFailure())
	pair("pkiagent_crl_ingestion_total", "CRLs verified and indexed, by result.",
		s.GetCrlIngestion().GetSuccess(), s.GetCrlIngestion().GetFailure())
	pair("pkiagent_enrollment_total", "Enrollments and renewals from a CA, by result.",
		s.GetEnrollment().GetSuccess(), s.GetEnrollment().GetFailure())
	f := e.family("pkiagent_certificate_problems_total", "counter", "Managed certificates found bad, by kind.")
	f.add(float64(s.GetCertificate().GetExpired()), "kind", "expired")
	f.add(float64(s.GetCertificate().GetInvalid()), "kind", "invalid")
	f.add(float64(s.GetCertificate().GetRevoked()), "kind", "revoked")
	f = e.family("pkiagent_peer_certificate_refused_total", "counter", "Peer certificates refused, by kind.")
	f.add(float64(s.GetPeerCertificate().GetExpired()), "kind", "expired")
	f.add(float64(s.GetPeerCertificate().GetInvalid()), "kind", "invalid")
	f.add(float64(s.GetPeerCertificate().GetRevoked()), "kind", "revoked")
}

func writeAlarms(e *encoder, a *gen.PkiAuthority_Alarms) {
	bySeverity := map[string]float64{"minor": 0, "major": 0, "critical": 0}
	active := e.family("pkiagent_alarm_active", "gauge", "An active alarm (always 1), with its id, category, severity and resource.")
	var alarms map[string]*gen.PkiAuthority_Alarms_Alarm
	if a != nil {
		alarms = a.Alarm
	}
	for _, id := range sortedKeys(alarms) {
		al := alarms[id]
		sev := enumName(al.Severity)
		bySeverity[sev]++
		active.add(1, "id", id, "category", enumName(al.Category), "severity", sev, "resource", al.GetResource())
	}
	count := e.family("pkiagent_alarms_active", "gauge", "Active alarms, by severity.")
	for _, sev := range []string{"minor", "major", "critical"} {
		count.add(bySeverity[sev], "severity", sev)
	}
}

func writeCertificates(e *encoder, cs *gen.PkiAuthority_Certificates) {
	expiry := e.family("pkiagent_certificate_not_after_timestamp_seconds", "gauge", "When each managed certificate expires (Unix time).")
	status := e.family("pkiagent_certificate_status", "gauge", "Status of each managed certificate (always 1, the status is a label).")
	if cs == nil {
		return
	}
	for _, name := range sortedKeys(cs.Certificate) {
		c := cs.Certificate[name]
		status.add(1, "name", name, "status", enumName(c.Status), "storage", enumName(c.KeyStorage))
		if t, ok := parseTime(c.NotAfter); ok {
			expiry.add(float64(t.Unix()), "name", name)
		}
	}
}

func writeCRLs(e *encoder, a *gen.PkiAuthority_Authority) {
	entries := e.family("pkiagent_crl_entries", "gauge", "Revoked certificates listed by each CRL source.")
	next := e.family("pkiagent_crl_next_update_timestamp_seconds", "gauge", "The nextUpdate of each CRL source's current list (Unix time).")
	success := e.family("pkiagent_crl_last_success_timestamp_seconds", "gauge", "The last successful fetch of each CRL source (Unix time).")
	failures := e.family("pkiagent_crl_consecutive_failures", "gauge", "Failed fetches of each CRL source since its last success.")
	if a == nil {
		return
	}
	for _, url := range sortedKeys(a.CertificateRevocationList) {
		st := a.CertificateRevocationList[url].GetState()
		if st == nil {
			continue
		}
		entries.add(u64(st.Entries), "url", url)
		failures.add(float64(st.GetConsecutiveFailures()), "url", url)
		if t, ok := parseTime(st.NextUpdate); ok {
			next.add(float64(t.Unix()), "url", url)
		}
		if t, ok := parseTime(st.LastSuccess); ok {
			success.add(float64(t.Unix()), "url", url)
		}
	}
}

func writePeers(e *encoder, a *gen.PkiAuthority_Authority) {
	status := e.family("pkiagent_peer_status", "gauge", "Validation status of each router peer (always 1, the status is a label).")
	if a == nil {
		return
	}
	for _, rn := range sortedKeys(a.Router) {
		r := a.Router[rn]
		for _, pn := range sortedKeys(r.Peer) {
			if st := r.Peer[pn].GetState(); st != nil {
				status.add(1, "router", rn, "peer", pn, "status", enumName(st.Status))
			}
		}
	}
}

// encoder collects families and writes them sorted by name.
type encoder struct{ families []*family }

type family struct {
	name, typ, help string
	samples         []string
}

func (e *encoder) family(name, typ, help string) *family {
	f := &family{name: name, typ: typ, help: help}
	e.families = append(e.families, f)
	return f
}

// add appends a sample; labels are name, value pairs.
func (f *family) add(v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(f.name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			labelEscaper.WriteString(&b, labels[i+1])
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
	f.samples = append(f.samples, b.String())
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func (e *encoder) flush(w io.Writer) {
	sort.Slice(e.families, func(i, j int) bool { return e.families[i].name < e.families[j].name })
	for _, f := range e.families {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, helpEscaper.Replace(f.help), f.name, f.typ)
		for _, s := range f.samples {
			io.WriteString(w, s)
			io.WriteString(w, "\n")
		}
	}
}

func u64(p *uint64) float64 {
	if p == nil {
		return 0
	}
	return float64(*p)
}

// enumName is the YANG name of a generated enumeration value, "" when unset.
func enumName(v interface{ String() string }) string {
	s := v.String()
	if strings.HasSuffix(s, "UNSET") || strings.HasPrefix(s, "out-of-range") {
		return ""
	}
	return s
}

func parseTime(s *string) (time.Time, bool) {
	if s == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, *s)
	return t, err == nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
