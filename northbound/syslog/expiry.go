package syslog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/persist"
)

// Expiry alerts follow IOS XR's PKI credentials expiry alerts: for each
// certificate of the device (/certificates/certificate, not the trusted
// CAs), a first alert 60 days before it expires, then one a week until the
// last week, then one a day until it expires; in warning mode (severity
// warning) while more than a week is left, in alert mode (severity alert)
// in the last week.

// alertDays are the days left at which an alert is due.
var alertDays = []int{60, 53, 46, 39, 32, 25, 18, 11, 7, 6, 5, 4, 3, 2, 1}

// dueSlot returns the index in alertDays of the latest alert due at now
// for a certificate that expires at notAfter, or -1: more than 60 days
// left, or expired (an alarm says so).
func dueSlot(notAfter, now time.Time) int {
	left := notAfter.Sub(now)
	if left <= 0 {
		return -1
	}
	slot := -1
	for i, d := range alertDays {
		if left <= time.Duration(d)*24*time.Hour {
			slot = i
		}
	}
	return slot
}

// expiryAlerts remembers, per certificate (name and fingerprint, so a
// renewed certificate starts again), the last alert sent, in a file, so
// that a restart sends none twice and misses none but the ones it slept
// through (only the latest due is sent).
type expiryAlerts struct {
	file  string
	marks map[string]int
}

func loadMarks(file string) (*expiryAlerts, error) {
	x := &expiryAlerts{file: file, marks: map[string]int{}}
	if file == "" {
		return x, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return x, nil
	}
	if err != nil {
		return nil, fmt.Errorf("syslog: reading the expiry alerts sent: %w", err)
	}
	if err := json.Unmarshal(b, &x.marks); err != nil {
		// The marks only prevent repeats: start afresh rather than fail.
		x.marks = map[string]int{}
	}
	return x, nil
}

func (x *expiryAlerts) save() error {
	if x.file == "" {
		return nil
	}
	b, err := json.Marshal(x.marks)
	if err != nil {
		return err
	}
	return persist.WriteFileAtomic(x.file, b, 0o600)
}

// checkExpiry sends the expiry alerts due now.
func (s *Sender) checkExpiry() {
	st, err := s.cfg.State.State()
	if err != nil {
		s.cfg.Logger.Error("syslog: reading the certificates for expiry alerts", "err", err)
		return
	}
	now := s.cfg.Clock.Now()
	x := s.expiry
	seen := map[string]bool{}
	changed := false
	var certs map[string]*gen.PkiAuthority_Certificates_Certificate
	if st.GetCertificates() != nil {
		certs = st.Certificates.Certificate
	}
	for name, c := range certs {
		notAfter, err := time.Parse(time.RFC3339, c.GetNotAfter())
		if err != nil {
			continue
		}
		key := name + " " + c.GetFingerprintSha256()
		seen[key] = true
		slot := dueSlot(notAfter, now)
		last, ok := x.marks[key]
		if slot < 0 || (ok && last >= slot) {
			continue
		}
		x.marks[key] = slot
		changed = true
		days := alertDays[slot]
		head := fmt.Sprintf("Certificate expiring WITHIN %d DAYS.", days)
		sev := uint8(sevWarning)
		if days <= 7 {
			head, sev = "Certificate expiring WITHIN A WEEK.", sevAlert
		}
		left := notAfter.Sub(now)
		s.enqueue(message{
			severity: sev, msgID: "CERT_EXPIRING",
			text: fmt.Sprintf("%%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : %s Trustpoint Name= %s, Certificate Type= ID, Serial Number= %s, Issuer Name= %s, Subject name= %s, Time Left= %s",
				head, name, c.GetSerial(), c.GetIssuer(), c.GetSubject(), timeLeft(left)),
			sdID: sdExpiry,
			params: [][2]string{{"trustpoint", name}, {"serial", c.GetSerial()}, {"issuer", c.GetIssuer()}, {"subject", c.GetSubject()},
				{"not-after", c.GetNotAfter()}, {"seconds-left", strconv.FormatInt(int64(left/time.Second), 10)}},
		})
	}
	for k := range x.marks {
		if !seen[k] {
			delete(x.marks, k)
			changed = true
		}
	}
	if changed {
		if err := x.save(); err != nil {
			s.cfg.Logger.Error("syslog: saving the expiry alerts sent; a restart may send the last ones again", "err", err)
		}
	}
}

// timeLeft is d as IOS XR prints it: "1 days, 23 hours, 59 minutes, 41
// seconds".
func timeLeft(d time.Duration) string {
	sec := int64(d / time.Second)
	return fmt.Sprintf("%d days, %d hours, %d minutes, %d seconds", sec/86400, sec%86400/3600, sec%3600/60, sec%60)
}
