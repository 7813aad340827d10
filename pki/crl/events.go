package crl

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strings"
	"time"
)

// Event is what a Manager reports: *Update, *StateChange, *AlarmChange,
// *Changed or *SourceRemoved. Events are delivered in order on one
// goroutine that is not the manager's, so a handler may call any Manager
// method but Refresh and Install (they wait for the handler); a slow
// handler delays later events but never the polling.
type Event interface{ crlEvent() }

// Outcome of one step of an attempt.
type Outcome int

const (
	// Skipped: the step did not run (no new CRL to ingest: 304 Not
	// Modified, identical bytes, or the fetch failed).
	Skipped Outcome = iota
	Succeeded
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "success"
	case Failed:
		return "failure"
	}
	return "skipped"
}

// Update is the outcome of one fetch attempt of one source: the
// system.crl_update audit record and the crl-update notification. Fetch
// and Ingestion drive the crl-fetch and crl-ingestion counters.
type Update struct {
	Time    time.Time
	URL     string
	Learned bool
	// Forced is true for attempts made by Refresh.
	Forced bool
	// Success is true when the source now holds a usable, verified list
	// (new, or unchanged: NotModified).
	Success     bool
	NotModified bool
	Fetch       Outcome
	Ingestion   Outcome
	// Err is why the attempt failed, nil on success.
	Err error
	// Issuer is the CRL issuer in RFC 4514 form; CertificateAuthority the
	// same name in OpenSSL's one-line form (/C=US/O=.../CN=...) and Subject
	// of the verifying CA. Empty when no list was ever held.
	Issuer               string
	CertificateAuthority string
	// Size is the DER size in bytes of the list held.
	Size                   int64
	TotalEntries           int
	AddedEntries           int
	RemovedEntries         int
	ThisUpdate, NextUpdate time.Time
}

func (*Update) crlEvent() {}

// UpdateDetail is the JSON detail of a system.crl_update audit record, with
// the fields and date format operators know from the SSR.
type UpdateDetail struct {
	Forced               bool   `json:"forced"`
	LastUpdated          string `json:"last_updated"`
	NextUpdate           string `json:"next_update"`
	CRLURL               string `json:"crl_url"`
	Size                 int64  `json:"size"`
	TotalEntries         int    `json:"total_entries"`
	AddedEntries         int    `json:"added_entries"`
	RemovedEntries       int    `json:"removed_entries"`
	Success              bool   `json:"success"`
	CertificateAuthority string `json:"certificate_authority"`
	Error                string `json:"error,omitempty"`
}

// OpenSSLTime formats t as OpenSSL prints CRL dates ("Oct 17 16:33:11 2024
// GMT"); the zero time is "".
func OpenSSLTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("Jan _2 15:04:05 2006 GMT")
}

// Detail returns the audit detail of u.
func (u *Update) Detail() UpdateDetail {
	d := UpdateDetail{
		Forced:               u.Forced,
		LastUpdated:          OpenSSLTime(u.ThisUpdate),
		NextUpdate:           OpenSSLTime(u.NextUpdate),
		CRLURL:               u.URL,
		Size:                 u.Size,
		TotalEntries:         u.TotalEntries,
		AddedEntries:         u.AddedEntries,
		RemovedEntries:       u.RemovedEntries,
		Success:              u.Success,
		CertificateAuthority: u.CertificateAuthority,
	}
	if u.Err != nil {
		d.Error = u.Err.Error()
	}
	if d.CertificateAuthority == "" {
		d.CertificateAuthority = "N/A"
	}
	return d
}

// Description is the audit description line.
func (u *Update) Description() string {
	if !u.Success {
		return fmt.Sprintf("Failed to update CRL from %s: %v", u.URL, u.Err)
	}
	iss := u.Issuer
	if iss == "" {
		iss = "unknown"
	}
	return "Updated CRL for issuer: " + iss
}

// StateChange carries the new operational state of one source.
type StateChange struct{ State SourceState }

func (*StateChange) crlEvent() {}

// Alarm categories and severities raised by the manager.
const (
	AlarmUnreachable = "crl-unreachable"
	AlarmStale       = "crl-stale"
	SeverityMajor    = "major"
)

// AlarmChange raises or clears an alarm. Each (Category, Resource) is
// raised once and cleared once: no repeats while the condition holds.
type AlarmChange struct {
	Category string // AlarmUnreachable or AlarmStale
	Resource string // the CRL URL
	Severity string // SeverityMajor
	Text     string
	Raised   bool // false: cleared
	Time     time.Time
}

func (*AlarmChange) crlEvent() {}

// Changed says the revocation index changed (a list was added, replaced
// with different entries, or dropped): re-check managed certificates.
type Changed struct {
	URL            string
	Added, Removed int
}

func (*Changed) crlEvent() {}

// SourceRemoved says a source is no longer polled and its list dropped.
type SourceRemoved struct{ URL string }

func (*SourceRemoved) crlEvent() {}

// SourceState is the operational state of one CRL source, as in
// /authority/certificate-revocation-list[url]/state.
type SourceState struct {
	URL                 string
	Learned             bool
	Issuer              string // RFC 4514
	ThisUpdate          time.Time
	NextUpdate          time.Time
	Number              string // CRLNumber in decimal, "" when absent
	Entries             int
	SizeBytes           int64
	LastAttempt         time.Time
	LastSuccess         time.Time
	LastError           string
	ConsecutiveFailures int
	NextAttempt         time.Time
	Unreachable         bool // the crl-unreachable alarm is raised
	Stale               bool // the crl-stale alarm is raised
}

// Stats are the manager's counters: those of Config.Resume plus what
// happened since New.
type Stats struct {
	FetchSuccess, FetchFailure         uint64
	IngestionSuccess, IngestionFailure uint64
}

func parseName(raw []byte) (pkix.RDNSequence, bool) {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(raw, &rdns)
	return rdns, err == nil && len(rest) == 0
}

// IssuerString renders a DER Name in RFC 4514 form.
func IssuerString(raw []byte) string {
	rdns, ok := parseName(raw)
	if !ok {
		return fmt.Sprintf("(unparsable name, %d bytes)", len(raw))
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdns)
	return n.String()
}

var shortNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
	"2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.5": "serialNumber",
	"2.5.4.9": "street", "2.5.4.17": "postalCode",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

// OneLine renders a DER Name as OpenSSL's one-line form, e.g.
// "/C=US/O=Google Trust Services/CN=WR2".
func OneLine(raw []byte) string {
	rdns, ok := parseName(raw)
	if !ok {
		return IssuerString(raw)
	}
	var b strings.Builder
	for _, rdn := range rdns {
		for i, atv := range rdn {
			if i == 0 {
				b.WriteByte('/')
			} else {
				b.WriteByte('+')
			}
			name := shortNames[atv.Type.String()]
			if name == "" {
				name = atv.Type.String()
			}
			fmt.Fprintf(&b, "%s=%v", name, atv.Value)
		}
	}
	return b.String()
}
