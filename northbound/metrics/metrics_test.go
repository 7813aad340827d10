package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
)

type stateFunc func() *gen.Device

func (f stateFunc) State() *gen.Device { return f() }

func sampleState() *gen.Device {
	d := &gen.Device{}
	sec := d.GetOrCreateStats().GetOrCreateSecurity()
	sec.GetOrCreateCsr().Success = ygot.Uint64(3)
	sec.GetOrCreateCsr().Failure = ygot.Uint64(1)
	sec.GetOrCreateCrlFetch().Failure = ygot.Uint64(7)
	sec.GetOrCreateEnrollment().Success = ygot.Uint64(4)
	sec.GetOrCreatePeerCertificate().Revoked = ygot.Uint64(2)
	al := d.GetOrCreateAlarms().GetOrCreateAlarm("certificate:gnmi")
	al.Category = gen.PkiAuthority_AlarmCategory_certificate_expiring
	al.Severity = gen.PkiAuthority_Severity_major
	al.Resource = ygot.String(`certificate "gnmi" \ box`)
	al2 := d.GetOrCreateAlarms().GetOrCreateAlarm("crl-unreachable:http://ca/x.crl")
	al2.Category = gen.PkiAuthority_AlarmCategory_crl_unreachable
	al2.Severity = gen.PkiAuthority_Severity_major
	c := d.GetOrCreateCertificates().GetOrCreateCertificate("gnmi")
	c.Status = gen.PkiAuthority_CertificateStatus_expiring_within_week
	c.KeyStorage = gen.PkiAuthority_KeyStorage_tpm
	c.NotAfter = ygot.String("2026-11-28T12:00:00Z")
	crl := d.GetOrCreateAuthority().GetOrCreateCertificateRevocationList("http://ca/x.crl").GetOrCreateState()
	crl.Entries = ygot.Uint64(1000000)
	crl.ConsecutiveFailures = ygot.Uint32(2)
	crl.NextUpdate = ygot.String("2026-11-24T00:00:00Z")
	p := d.GetOrCreateAuthority().GetOrCreateRouter("r1").GetOrCreatePeer("r2").GetOrCreateState()
	p.Status = gen.PkiAuthority_PeerStatus_severed
	return d
}

// sampleLine is a sample of the text exposition format 0.0.4.
var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? -?[0-9.e+]+$`)

func scrape(t *testing.T, st StateReader) (string, *http.Response) {
	t.Helper()
	srv := httptest.NewServer(Handler(st, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp
}

func TestScrapeOfAgentState(t *testing.T) {
	store := agent.New(agent.Config{})
	defer store.Close()
	store.AddStateSource(stateFunc(sampleState))
	body, resp := scrape(t, store)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
		case strings.HasPrefix(line, "# TYPE "):
			typed[strings.Fields(line)[2]] = true
		case !sampleLine.MatchString(line):
			t.Errorf("not a valid sample line: %q", line)
		case !typed[line[:strings.IndexAny(line, "{ ")]]:
			t.Errorf("sample before its # TYPE line: %q", line)
		}
	}
	for _, want := range []string{
		`pkiagent_csr_total{result="success"} 3`,
		`pkiagent_csr_total{result="failure"} 1`,
		`pkiagent_certificate_import_total{result="success"} 0`,
		`pkiagent_crl_fetch_total{result="failure"} 7`,
		`pkiagent_enrollment_total{result="success"} 4`,
		`pkiagent_enrollment_total{result="failure"} 0`,
		`pkiagent_peer_certificate_refused_total{kind="revoked"} 2`,
		`pkiagent_alarms_active{severity="major"} 2`,
		`pkiagent_alarms_active{severity="critical"} 0`,
		`pkiagent_alarm_active{id="certificate:gnmi",category="certificate-expiring",severity="major",resource="certificate \"gnmi\" \\ box"} 1`,
		`pkiagent_certificate_status{name="gnmi",status="expiring-within-week",storage="tpm"} 1`,
		`pkiagent_certificate_not_after_timestamp_seconds{name="gnmi"} 1795867200`,
		`pkiagent_crl_entries{url="http://ca/x.crl"} 1000000`,
		`pkiagent_crl_consecutive_failures{url="http://ca/x.crl"} 2`,
		`pkiagent_peer_status{router="r1",peer="r2",status="severed"} 1`,
		"# TYPE pkiagent_csr_total counter",
		"# TYPE pkiagent_alarms_active gauge",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %s in\n%s", want, body)
		}
	}
}

func TestEmptyStateStillHasTheCounters(t *testing.T) {
	store := agent.New(agent.Config{})
	defer store.Close()
	body, _ := scrape(t, store)
	if !strings.Contains(body, `pkiagent_csr_total{result="success"} 0`) || !strings.Contains(body, `pkiagent_alarms_active{severity="minor"} 0`) {
		t.Fatalf("got\n%s", body)
	}
}

type failing struct{}

func (failing) State() (*gen.Device, error) { return nil, errors.New("state source broken") }

func TestStateErrorIs500(t *testing.T) {
	body, resp := scrape(t, failing{})
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "state source broken") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestOnlyGet(t *testing.T) {
	srv := httptest.NewServer(Handler(failing{}, nil))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatal(resp.Status)
	}
}

func BenchmarkScrape(b *testing.B) {
	d := sampleState()
	for i := range 1000 {
		c := d.GetOrCreateCertificates().GetOrCreateCertificate(fmt.Sprintf("cert-%04d", i))
		c.Status = gen.PkiAuthority_CertificateStatus_valid
	}
	for b.Loop() {
		Write(io.Discard, d)
	}
}

func TestSyslogCounters(t *testing.T) {
	var b strings.Builder
	Write(&b, &gen.Device{System: &gen.PkiAgentSystem_System{Syslog: &gen.PkiAgentSystem_System_Syslog{
		State: &gen.PkiAgentSystem_System_Syslog_State{Sent: new(uint64(7)), Dropped: new(uint64(3))}}}})
	for _, want := range []string{`pkiagent_syslog_messages_total{result="sent"} 7`, `pkiagent_syslog_messages_total{result="dropped"} 3`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %s in:\n%s", want, b.String())
		}
	}
	b.Reset()
	Write(&b, &gen.Device{})
	if strings.Contains(b.String(), "syslog") {
		t.Errorf("syslog counters without a sender:\n%s", b.String())
	}
}
