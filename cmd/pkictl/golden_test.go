package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/pkiagent/pkiagent/audit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// long is a name at the 64-character limit of object-name.
const long = "conductor-east-1.RTR_EAST_CONDUCTOR.peering-certificate-2026-v02"

func fixtureCerts() []certificate {
	return []certificate{
		{Name: "router", Status: "valid", Subject: "CN=r1.example.net", Issuer: "CN=Lab Root CA", Serial: "1a2b3c", NotAfter: "2027-12-01T00:00:00Z", KeyAlgorithm: "ecc-secp384r1", KeyStorage: "tpm"},
		{Name: long, Status: "expiring-within-week", Subject: "CN=" + long + ",OU=SPBU,O=CSCO,L=BGL,ST=KA,C=IN", Issuer: "CN=SUB_CA_CERT,OU=SPBU,O=CSCO,L=BGL,ST=KA,C=IN",
			Serial: "28e5aa01bc9f0d3e41727d6c5a3a0b1f00112233", NotAfter: "2026-12-06T08:49:54Z", KeyAlgorithm: "rsa-4096", KeyStorage: "file"},
		{Name: "spare", Status: "no-certificate", KeyAlgorithm: "ecc-secp256r1", KeyStorage: "file"},
	}
}

func fixtureAlarms() []alarm {
	a := []alarm{
		{ID: "certificate:" + long, Resource: "certificate " + long, Category: "certificate-expiring", Severity: "major", TimeRaised: "2026-12-01T08:49:54Z",
			Text: "certificate " + long + ": expires in 5 days (2026-12-06T08:49:54Z)"},
		{ID: "certificate:router", Resource: "certificate router", Category: "certificate-revoked", Severity: "critical", TimeRaised: "2026-12-01T09:00:00Z",
			Text: `certificate router: the certificate (serial 1a2b3c) is revoked by its CA "CN=Lab Root CA": issue and import a new certificate`},
		{ID: "crl:http://crl.example.net/a-very-long-path/to/the/revocation/list/of/the/issuing/ca.crl", Resource: "certificate-revocation-list http://crl.example.net/a-very-long-path/to/the/revocation/list/of/the/issuing/ca.crl",
			Category: "crl-unreachable", Severity: "major", TimeRaised: "2026-12-01T07:00:00Z", Text: "CRL could not be fetched: connection refused"},
	}
	sortAlarms(a)
	return a
}

func fixtureCAs() []trustedCA {
	var ca trustedCA
	ca.Name, ca.ValidationMode, ca.State.Status = "svrv2-root-of-trust", "warn", "warning"
	ca.State.Warning = []string{"CA CN=OpenXPKI Demo Issuing CA 20250507 expires in 20 days"}
	ca.State.Certificate = append(ca.State.Certificate,
		struct {
			Fingerprint string `json:"fingerprint-sha256"`
			Subject     string `json:"subject"`
			Issuer      string `json:"issuer"`
			Serial      string `json:"serial"`
			NotBefore   string `json:"not-before"`
			NotAfter    string `json:"not-after"`
		}{"aa", "CN=OpenXPKI Demo Issuing CA 20250507,OU=PKI,O=OpenXPKI,C=DE", "CN=OpenXPKI Root CA 20250507", "59fa11a24f8f4dc0e8ce4e50b9e20e84dbc2c25c", "2025-05-07T20:03:08Z", "2026-12-21T20:03:08Z"},
		struct {
			Fingerprint string `json:"fingerprint-sha256"`
			Subject     string `json:"subject"`
			Issuer      string `json:"issuer"`
			Serial      string `json:"serial"`
			NotBefore   string `json:"not-before"`
			NotAfter    string `json:"not-after"`
		}{"bb", "CN=OpenXPKI Root CA 20250507", "CN=OpenXPKI Root CA 20250507", "63a84996cb3bb222374876733c7f588b2a25cd62", "2025-05-07T20:03:08Z", "2035-05-10T20:03:08Z"})
	return []trustedCA{ca}
}

func fixtureCRLs() []crlSource {
	var a, b crlSource
	a.URL, a.Source = "http://crl.example.net/a-very-long-path/to/the/revocation/list/of/the/issuing/ca.crl", "configured"
	a.State.Issuer, a.State.ThisUpdate, a.State.NextUpdate, a.State.Entries = "CN=OpenXPKI Demo Issuing CA 20250507,OU=PKI,O=OpenXPKI,C=DE", "2026-12-01T00:00:00Z", "2026-12-08T00:00:00Z", 1000000
	a.State.SizeBytes, a.State.LastSuccess = 49000000, "2026-12-01T00:00:05Z"
	b.URL, b.Source = "file:///var/lib/pki/lab.crl", "learned"
	b.State.LastError, b.State.ConsecutiveFailures = "CRL could not be fetched: open /var/lib/pki/lab.crl: no such file or directory", 3
	return []crlSource{a, b}
}

func fixtureRouters() []router {
	r := router{Name: "RTR_EAST_CONDUCTOR", PeerValidation: true, FailureAction: "fail-hard"}
	p := peer{Name: "west-1", Identifier: "8f3c2f0e-5d7a-4c43-9d87-7e0b3c1d2a11"}
	p.State.Status, p.State.Reason, p.State.LastValidated = "revoked", `certificate "west-1" (serial 1a2b3c) is revoked by a CRL of "CN=Lab Root CA"`, "2026-12-01T09:00:00Z"
	q := peer{Name: long, Identifier: long}
	q.State.Status = "unknown"
	r.Peer = []peer{p, q}
	return []router{r, {Name: "r2"}}
}

func fixtureStats() securityStats {
	var s securityStats
	s.CSR = counterPair{Success: 12, Failure: 1}
	s.CertificateImport = counterPair{Success: 10, Failure: 3}
	s.CRLFetch = counterPair{Success: 4567, Failure: 89}
	s.CRLIngestion = counterPair{Success: 4560, Failure: 7}
	s.Certificate = eventCounters{Expired: 1, Revoked: 2}
	s.PeerCertificate = eventCounters{Invalid: 5}
	return s
}

// renderer draws a view at a width.
type renderer func(w *bytes.Buffer, width int)

// TestGoldenTables renders every show view at a wide and a narrow width
// and compares with testdata/NAME.WIDTH.golden (go test -update rewrites
// them). At the narrow width no line may be wider than the terminal
// unless a single word is.
func TestGoldenTables(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	views := map[string]renderer{
		"certificates": func(w *bytes.Buffer, width int) { certTable(fixtureCerts()).render(w, width) },
		"alarms":       func(w *bytes.Buffer, width int) { alarmTable(fixtureAlarms()).render(w, width) },
		"trusted-ca":   func(w *bytes.Buffer, width int) { caTable(fixtureCAs()).render(w, width) },
		"crl":          func(w *bytes.Buffer, width int) { crlTable(fixtureCRLs()).render(w, width) },
		"crl-detail":   func(w *bytes.Buffer, width int) { crlDetail(fixtureCRLs()[1]).render(w, width) },
		"revoked": func(w *bytes.Buffer, width int) {
			revokedTable([]revoked{{Serial: "28e5aa01bc9f0d3e41727d6c5a3a0b1f00112233", Time: "2026-12-01T09:00:00Z", Reason: 1}, {Serial: "10b6", Time: "2026-11-30T09:00:00Z"}}).render(w, width)
		},
		"peers": func(w *bytes.Buffer, width int) { peerTable(fixtureRouters()).render(w, width) },
		"ca-profile": func(w *bytes.Buffer, width int) {
			p := caProfile{Name: "ejbca", Protocol: "cmpv2", URL: "http://ca.example.net:8080/ejbca/publicweb/cmp/CMP-Server", TrustedCA: long}
			p.CMPv2.Reference = "3078"
			p.State.Status, p.State.LastContact = "up", "2026-12-01T09:00:00Z"
			q := caProfile{Name: "lab", Protocol: "cmpv2", URL: "http://127.0.0.1:8080/pkix/", TrustedCA: "lab-ca"}
			q.State.Status, q.State.LastError = "down", "the CA refused the request: its MAC does not verify with our shared secret (the secret or reference is probably wrong)"
			caProfileTable([]caProfile{p, q}).render(w, width)
		},
		"enrollment": func(w *bytes.Buffer, width int) {
			var a, b enrollment
			a.Name, a.Enrollment.CAProfile, a.Enrollment.Subject, a.Enrollment.AutoRenew = long, "ejbca", "C=NL,ST=ZH,O=Nokia,CN=sr", 80
			a.State.Status, a.State.LastSuccess, a.State.NextRenewal, a.State.TransactionID = "idle", "2026-12-01T09:00:00Z", "2027-09-18T02:24:00Z", "5f2c0d1e9a8b7c6d5e4f3a2b1c0d9e8f"
			b.Name, b.Enrollment.CAProfile, b.Enrollment.Subject, b.Enrollment.AutoRenew = "gnmi", "lab", "CN=r1.example.net", 50
			b.State.Status, b.State.LastError = "failed", "the CA is unreachable: dial tcp 127.0.0.1:8080: connect: connection refused"
			enrollmentTable([]enrollment{a, b}).render(w, width)
		},
		"stats": func(w *bytes.Buffer, width int) { statsTable(fixtureStats()).render(w, width) },
		"keys": func(w *bytes.Buffer, width int) {
			keysView([]key{{Name: long, Algorithm: "ecc", Size: 256, Curve: "secp256r1", Storage: "tpm", Type: "ECDSA P-256 (256 bit)", Fingerprint: "ab12",
				PublicKey: "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEvdZhUNTxm/p+zlbZNVU6yWWqRJvM\n6zOOPcXjjOBj8kCxqKNbMHPUVP7r5/HxaGfANzlIIPOzsE3DmuYhkqw2dg==\n-----END PUBLIC KEY-----\n"},
				{Name: "spare", Algorithm: "rsa", Size: 2048, Storage: "file"}}).render(w, width)
		},
		"commits": func(w *bytes.Buffer, width int) {
			commitTable([]commitRecord{{ID: 1, Time: t0.Format(time.RFC3339Nano), User: "admin", Owner: "gnmi admin", Changes: 2},
				{ID: 2, Time: t0.Add(time.Minute).Format(time.RFC3339Nano), User: "operator-with-a-long-name", Owner: "netconf session 12", Changes: 14, Comment: "NETCONF commit", RollbackAvailable: true},
				{ID: 3, Time: t0.Add(2 * time.Minute).Format(time.RFC3339Nano), User: "admin", Owner: "netconf session 13", Changes: 3, Comment: "rollback to commit 1", ConfirmedPending: true, RollbackAvailable: true}}).render(w, width)
		},
		"audit": func(w *bytes.Buffer, width int) {
			auditView([]audit.Event{{Time: t0, Node: "test-1", User: "admin", Type: "system.generate_csr", Description: "generate CSR for TestCertificate",
				Detail: map[string]any{"name": "TestCertificate", "common_name": "example.com", "locality_name": "San Francisco", "validity_period_days": 365}, Permitted: true}}, w, width)
		},
	}
	for name, render := range views {
		for _, width := range []int{200, 60} {
			t.Run(name+"/"+strconv.Itoa(width), func(t *testing.T) {
				var b bytes.Buffer
				render(&b, width)
				got := b.String()
				path := filepath.Join("testdata", name+"."+strconv.Itoa(width)+".golden")
				if *update {
					os.MkdirAll("testdata", 0o755)
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				wantB, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (go test -update writes it)", err)
				}
				if d := cmp.Diff(string(wantB), got); d != "" {
					t.Errorf("%s (-golden +got):\n%s", path, d)
				}
				for _, l := range strings.Split(got, "\n") {
					if utf8.RuneCountInString(l) > width && !strings.Contains(l, "=====") {
						t.Errorf("line wider than %d: %q", width, l)
					}
				}
			})
		}
	}
}

// TestWrapKeepsEveryCharacter: wrapping loses nothing and keeps to the width.
func TestWrapKeepsEveryCharacter(t *testing.T) {
	for _, s := range []string{long, "CN=" + long + ",OU=SPBU,O=CSCO", "a b c", "", strings.Repeat("x", 100)} {
		for _, w := range []int{1, 5, 8, 20} {
			lines := wrap(s, w)
			if j := strings.Join(lines, ""); strings.ReplaceAll(j, " ", "") != strings.ReplaceAll(s, " ", "") {
				t.Errorf("wrap(%q, %d) = %q", s, w, lines)
			}
			for _, l := range lines {
				if utf8.RuneCountInString(l) > w {
					t.Errorf("wrap(%q, %d): %q is wider", s, w, l)
				}
			}
		}
	}
}
