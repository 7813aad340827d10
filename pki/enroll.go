package pki

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/redact"
	"github.com/pkiagent/pkiagent/pki/cmp"
	"github.com/pkiagent/pkiagent/pki/expiry"
	"github.com/pkiagent/pkiagent/pki/keystore"
)

// Enrollment: /authority/ca-profile and client-certificate/enrollment. A
// client certificate with an enrollment and no certificate in force enrolls
// at once (ir, protected by the profile's PBM secret); at auto-renew
// percent of its lifetime it renews (kur, signed by the certificate in
// force, with a new key when rekey). Each attempt is a Rotation: the new key
// waits beside the one in force, the issued certificate passes the three
// import checks, and only then are key and certificate swapped; a failure
// or a crash at any point leaves the pair in force (RecoverRotations). A
// failed attempt is retried after retry-interval, doubling up to an hour,
// and raises certificate-enrollment-failed until one succeeds.

const (
	categoryEnrollment = "certificate-enrollment-failed"
	alarmEnrollment    = "certificate-enrollment:"
	maxRetryInterval   = time.Hour
)

// enrollCaller is who the audit records for automatic enrollments.
var enrollCaller = api.Caller{User: "pki-agent (enrollment)", Role: api.RoleAdmin}

// caClient is the CA side of an enrollment: a *cmp.Client.
type caClient interface {
	Enroll(ctx context.Context, req cmp.Request) (*cmp.Result, error)
}

// caProfile is one /authority/ca-profile, checked.
type caProfile struct {
	name, url, trustedCA, proxy string
	timeout                     time.Duration
	reference                   string
	secret                      []byte
	recipient                   string
	acceptUnprotectedErrors     bool
}

// enrollSpec is one client-certificate/enrollment, checked.
type enrollSpec struct {
	name, profile string
	subject       pkix.Name
	dns, emails   []string
	ips           []net.IP
	uris          []*url.URL
	key           KeySpec
	storage       string
	autoRenew     int
	rekey         bool
	retry         time.Duration
}

// enrollState is what /authority/client-certificate/state shows, and the
// retry schedule.
type enrollState struct {
	status                              string // idle | enrolling | waiting | failed
	lastAttempt, lastSuccess, nextRenew time.Time
	lastError, transactionID            string
	failures                            int
	retryAt                             time.Time
}

// caState is what /authority/ca-profile/state shows.
type caState struct {
	status      string // unknown | up | down
	lastContact time.Time
	lastError   string
}

// enroller owns the enrollment configuration, state and schedule. Lock
// order: Engine.mu before enroller.mu; enroller.mu is never held while
// calling the engine.
type enroller struct {
	e *Engine
	// dial makes the CA client of a profile (cmp.Client; tests may put a
	// CA of their own).
	dial func(p caProfile, trusted *x509.CertPool, recipient pkix.Name) caClient

	mu       sync.Mutex
	profiles map[string]caProfile
	specs    map[string]enrollSpec
	states   map[string]*enrollState
	cas      map[string]*caState
	busy     map[string]bool
	// staged is the configuration before the commit being applied.
	staged *enrollConfig
	wake   chan struct{}
}

// savedEnrollment is what DIR/pki-state keeps of an enrollment state
// (durable.go), so a restart resumes the retry schedule and shows the
// last outcome.
type savedEnrollment struct {
	Name          string    `json:"name"`
	LastAttempt   time.Time `json:"last-attempt,omitzero"`
	LastSuccess   time.Time `json:"last-success,omitzero"`
	LastError     string    `json:"last-error,omitempty"`
	TransactionID string    `json:"transaction-id,omitempty"`
	Failures      int       `json:"failures,omitempty"`
	RetryAt       time.Time `json:"retry-at,omitzero"`
}

// saved is the enrollment states to keep.
func (en *enroller) saved() map[string]savedEnrollment {
	en.mu.Lock()
	defer en.mu.Unlock()
	out := make(map[string]savedEnrollment, len(en.states))
	for n, st := range en.states {
		out[n] = savedEnrollment{Name: n, LastAttempt: st.lastAttempt, LastSuccess: st.lastSuccess, LastError: st.lastError,
			TransactionID: st.transactionID, Failures: st.failures, RetryAt: st.retryAt}
	}
	return out
}

// restore puts back the states saved before a restart; an attempt a
// restart interrupted shows as failed.
func (en *enroller) restore(saved map[string]savedEnrollment) {
	en.mu.Lock()
	defer en.mu.Unlock()
	for n, s := range saved {
		st := &enrollState{status: "idle", lastAttempt: s.LastAttempt, lastSuccess: s.LastSuccess, lastError: s.LastError,
			transactionID: s.TransactionID, failures: s.Failures, retryAt: s.RetryAt}
		if st.failures > 0 {
			st.status = "failed"
		}
		en.states[n] = st
	}
}

type enrollConfig struct {
	profiles map[string]caProfile
	specs    map[string]enrollSpec
}

func newEnroller(e *Engine) *enroller {
	en := &enroller{
		e: e, profiles: map[string]caProfile{}, specs: map[string]enrollSpec{},
		states: map[string]*enrollState{}, cas: map[string]*caState{}, busy: map[string]bool{},
		wake: make(chan struct{}, 1),
	}
	en.dial = func(p caProfile, trusted *x509.CertPool, recipient pkix.Name) caClient {
		c := &cmp.Client{URL: p.url, Timeout: p.timeout, Trusted: trusted, Recipient: recipient,
			AcceptUnprotectedErrors: p.acceptUnprotectedErrors, Clock: e.clock, Logger: e.log}
		if p.proxy != "" {
			c.Proxy, _ = url.Parse(p.proxy) // checked by enrollConfigOf
		}
		return c
	}
	return en
}

// ---- configuration -----------------------------------------------------

// enrollConfigOf reads and checks the CA profiles and the enrollments of
// auth. Errors name the path.
func enrollConfigOf(auth *gen.PkiAuthority_Authority) (*enrollConfig, error) {
	cfg := &enrollConfig{profiles: map[string]caProfile{}, specs: map[string]enrollSpec{}}
	var errs []error
	for name, p := range auth.CaProfile {
		at := listElem("ca-profile", "name", name)
		switch p.GetProtocol() {
		case gen.PkiAuthority_Authority_CaProfile_Protocol_est, gen.PkiAuthority_Authority_CaProfile_Protocol_scep:
			errs = append(errs, invalidAt(fmt.Errorf("protocol %s is not supported yet: only cmpv2 enrolls in this release", p.GetProtocol().String()), at, &gnmi.PathElem{Name: "protocol"}))
			continue
		}
		cp := caProfile{
			name: name, url: p.GetUrl(), trustedCA: p.GetTrustedCa(), proxy: p.GetHttpProxy(),
			timeout:   time.Duration(p.GetTimeout()) * time.Second,
			reference: p.GetCmpv2().GetReference(), recipient: p.GetCmpv2().GetRecipient(),
			acceptUnprotectedErrors: p.GetCmpv2().GetAcceptUnprotectedErrors(),
		}
		if s := p.GetCmpv2().GetSecret(); s != "" {
			cp.secret = []byte(s)
		}
		if u, err := url.Parse(cp.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, invalidAt(fmt.Errorf("url must be an http or https URL with a host"), at, &gnmi.PathElem{Name: "url"}))
		}
		if cp.proxy != "" {
			if u, err := url.Parse(cp.proxy); err != nil || u.Host == "" {
				errs = append(errs, invalidAt(fmt.Errorf("http-proxy must be an http or https URL with a host"), at, &gnmi.PathElem{Name: "http-proxy"}))
			}
		}
		if auth.GetTrustedCaCertificate(cp.trustedCA) == nil {
			errs = append(errs, invalidAt(fmt.Errorf("trusted-ca %s is not a configured trusted-ca-certificate", redact.Value(cp.trustedCA)), at, &gnmi.PathElem{Name: "trusted-ca"}))
		}
		if (cp.reference == "") != (cp.secret == nil) {
			errs = append(errs, invalidAt(fmt.Errorf("cmpv2 reference and secret go together: set both for MAC protection, or neither"), at, &gnmi.PathElem{Name: "cmpv2"}))
		}
		if cp.recipient != "" {
			if _, err := parseDN(cp.recipient); err != nil {
				errs = append(errs, invalidAt(fmt.Errorf("cmpv2 recipient: %w", err), at, &gnmi.PathElem{Name: "cmpv2"}, &gnmi.PathElem{Name: "recipient"}))
			}
		}
		cfg.profiles[name] = cp
	}
	for name, cc := range auth.ClientCertificate {
		en := cc.GetEnrollment()
		if en.GetCaProfile() == "" { // the container's defaults alone enroll nothing
			continue
		}
		at := listElem("client-certificate", "name", name)
		if en.GetSubject() == "" {
			errs = append(errs, invalidAt(fmt.Errorf("an enrollment needs a subject"), at, &gnmi.PathElem{Name: "enrollment"}, &gnmi.PathElem{Name: "subject"}))
			continue
		}
		s := enrollSpec{
			name: name, profile: en.GetCaProfile(), storage: en.GetKeyStorage().String(),
			autoRenew: int(en.GetAutoRenew()), rekey: en.GetRekey(),
			retry: time.Duration(en.GetRetryInterval()) * time.Second,
			key:   KeySpec{Algorithm: en.GetKeyAlgorithm().String(), RSABits: int(en.GetRsaKeySize()), Curve: en.GetEccCurve().String()},
		}
		if auth.GetCaProfile(s.profile) == nil {
			errs = append(errs, invalidAt(fmt.Errorf("ca-profile %s is not configured", redact.Value(s.profile)), at, &gnmi.PathElem{Name: "enrollment"}, &gnmi.PathElem{Name: "ca-profile"}))
		}
		subj, err := parseDN(en.GetSubject())
		if err != nil {
			errs = append(errs, invalidAt(fmt.Errorf("subject: %w", err), at, &gnmi.PathElem{Name: "enrollment"}, &gnmi.PathElem{Name: "subject"}))
		}
		s.subject = subj
		if san := en.GetSubjectAltName(); san != nil {
			s.dns, s.emails = san.Dns, san.Email
			for _, v := range san.Ip {
				ip := net.ParseIP(v)
				if ip == nil {
					errs = append(errs, invalidAt(fmt.Errorf("subject-alt-name ip %s is not an IP address", redact.Value(v)), at, &gnmi.PathElem{Name: "enrollment"}, &gnmi.PathElem{Name: "subject-alt-name"}))
					continue
				}
				s.ips = append(s.ips, ip)
			}
			for _, v := range san.Uri {
				u, err := url.Parse(v)
				if err != nil || u.Scheme == "" {
					errs = append(errs, invalidAt(fmt.Errorf("subject-alt-name uri %s is not an absolute URI", redact.Value(v)), at, &gnmi.PathElem{Name: "enrollment"}, &gnmi.PathElem{Name: "subject-alt-name"}))
					continue
				}
				s.uris = append(s.uris, u)
			}
		}
		if err := s.key.Validate(); err != nil {
			errs = append(errs, invalidAt(err, at, &gnmi.PathElem{Name: "enrollment"}, &gnmi.PathElem{Name: "key-algorithm"}))
		}
		cfg.specs[name] = s
	}
	return cfg, errors.Join(errs...)
}

// The enroller is the reconciler of /authority/ca-profile and
// client-certificate/enrollment (a ca-profile names a trusted CA, so it
// watches those too); it checks the whole enrollment configuration, which
// is small.
func (en *enroller) id() string { return "enrollment" }

func (en *enroller) watches() []string {
	return []string{"ca-profile", "client-certificate", "trusted-ca-certificate"}
}

func (en *enroller) validate(_ context.Context, c *api.Commit, _ touched) error {
	cfg, err := enrollConfigOf(authorityOf(c.New))
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range sortedKeys(cfg.specs) {
		spec := cfg.specs[s]
		if _, ok := en.e.cfg.Keys[spec.storage]; !ok {
			errs = append(errs, invalidAt(fmt.Errorf("key-storage %s: no such key store on this agent (a TPM needs --tpm)", spec.storage),
				listElem("client-certificate", "name", s), &gnmi.PathElem{Name: "enrollment"}, &gnmi.PathElem{Name: "key-storage"}))
		}
	}
	return errors.Join(errs...)
}

// apply puts the configuration of c in force for the evaluation; Engine.mu
// is held.
func (en *enroller) apply(_ context.Context, c *api.Commit, _ touched) error {
	cfg, err := enrollConfigOf(authorityOf(c.New))
	if err != nil {
		return err
	}
	en.mu.Lock()
	defer en.mu.Unlock()
	// The alarm of an enrollment that is no longer configured clears with
	// the commit (restored with the engine's alarms if it fails).
	for name := range en.specs {
		if _, ok := cfg.specs[name]; !ok {
			if tr, ok := en.e.alarms.Clear(alarmEnrollment + name); ok {
				en.e.publishAlarm(tr)
			}
		}
	}
	en.staged = &enrollConfig{profiles: en.profiles, specs: en.specs}
	en.profiles, en.specs = cfg.profiles, cfg.specs
	return nil
}

// finish ends the commit staged: kept (and the schedule woken) or undone.
func (en *enroller) finish(committed bool) {
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.staged == nil {
		return
	}
	if !committed {
		en.profiles, en.specs = en.staged.profiles, en.staged.specs
	} else {
		for name := range en.states {
			if _, ok := en.specs[name]; !ok {
				delete(en.states, name)
			}
		}
		for name := range en.cas {
			if _, ok := en.profiles[name]; !ok {
				delete(en.cas, name)
			}
		}
	}
	en.staged = nil
	en.poke()
}

func (en *enroller) poke() {
	select {
	case en.wake <- struct{}{}:
	default:
	}
}

// ---- schedule ------------------------------------------------------------

// renewAt is when a certificate is due: at autoRenew percent of its
// lifetime.
func renewAt(cert *x509.Certificate, autoRenew int) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(life / 100 * time.Duration(autoRenew))
}

// dueLocked says when name is next due (zero: now): after a failed
// attempt, its retry time; else at auto-renew percent of the lifetime of
// its certificate in force; now when it has none in date. Engine.mu and
// en.mu held.
func (en *enroller) dueLocked(name string, now time.Time) time.Time {
	s := en.specs[name]
	st := en.stateOf(name)
	var due time.Time
	if mc := en.e.certs[name]; mc != nil && mc.cert != nil && !now.After(mc.cert.NotAfter) {
		due = renewAt(mc.cert, s.autoRenew)
	}
	if st.failures > 0 { // a failed attempt, even a forced one, is retried
		due = st.retryAt
	}
	st.nextRenew = due
	if due.IsZero() {
		st.nextRenew = now
	}
	return due
}

func (en *enroller) stateOf(name string) *enrollState {
	st := en.states[name]
	if st == nil {
		st = &enrollState{status: "idle"}
		en.states[name] = st
	}
	return st
}

// run enrolls and renews what is due until ctx ends.
func (en *enroller) run(ctx context.Context) {
	e := en.e
	t := e.clock.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := e.clock.Now()
		var due []string
		next := now.Add(time.Hour)
		e.mu.Lock()
		en.mu.Lock()
		for _, name := range sortedKeys(en.specs) {
			if en.busy[name] {
				continue
			}
			d := en.dueLocked(name, now)
			if !d.After(now) {
				due = append(due, name)
			} else if d.Before(next) {
				next = d
			}
		}
		en.mu.Unlock()
		e.publishStateLocked()
		e.mu.Unlock()
		for _, name := range due {
			if ctx.Err() != nil {
				return
			}
			en.enroll(ctx, name, enrollCaller, true) // due: dueLocked decided
		}
		if len(due) > 0 {
			continue // what the attempts changed sets the next time
		}
		t.Reset(next.Sub(e.clock.Now()))
		if !e.clock.Now().Before(next) {
			continue // the clock passed next while the timer was set
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-en.wake:
		}
	}
}

// ---- one enrollment --------------------------------------------------

// enrollOutcome is the result of one attempt.
type enrollOutcome struct {
	result      string // enrolled | renewed | failed
	fingerprint string
	notAfter    time.Time
	message     string
}

// enroll runs one attempt for name now (force: even when not due).
func (en *enroller) enroll(ctx context.Context, name string, caller api.Caller, force bool) (out enrollOutcome, err error) {
	e := en.e
	en.mu.Lock()
	spec, ok := en.specs[name]
	if !ok {
		en.mu.Unlock()
		return out, fmt.Errorf("%w: client-certificate %s has no enrollment configured", api.ErrInvalid, name)
	}
	prof := en.profiles[spec.profile]
	en.mu.Unlock()
	now := e.clock.Now()
	e.mu.Lock()
	var cur *x509.Certificate
	var curChain []*x509.Certificate
	curStorage := ""
	if mc := e.certs[name]; mc != nil {
		cur, curChain, curStorage = mc.cert, mc.chain, mc.storage
	}
	caCerts := e.trustedCertsLocked(prof.trustedCA)
	e.mu.Unlock()
	if cur != nil && !force && now.Before(renewAt(cur, spec.autoRenew)) {
		return enrollOutcome{result: "renewed", fingerprint: fingerprintOf(cur), notAfter: cur.NotAfter,
			message: "not due for renewal until " + renewAt(cur, spec.autoRenew).UTC().Format(time.RFC3339) + "; nothing done (force renews now)"}, nil
	}
	en.mu.Lock()
	if en.busy[name] {
		en.mu.Unlock()
		return out, fmt.Errorf("%w: an enrollment of %s is in progress; try again when it ends", api.ErrInvalid, name)
	}
	en.busy[name] = true
	st := en.stateOf(name)
	st.status, st.lastAttempt = "enrolling", now
	en.mu.Unlock()
	e.publishState()

	var tid []byte
	var kind cmp.Kind
	defer func() {
		en.finishAttempt(name, prof, kind, tid, &out, err)
	}()

	if len(caCerts) == 0 {
		return out, fmt.Errorf("ca-profile %s: trusted-ca %s holds no certificate", prof.name, prof.trustedCA)
	}
	pool := x509.NewCertPool()
	for _, c := range caCerts {
		pool.AddCert(c)
	}
	recipient := issuingCA(caCerts).Subject
	if prof.recipient != "" {
		recipient, _ = parseDN(prof.recipient) // checked by enrollConfigOf
	}
	client := en.dial(prof, pool, recipient)

	r, err := e.BeginRotation(name, caller)
	if err != nil {
		return out, err
	}
	r.via = "enrollment"
	defer func() {
		if err != nil {
			if rerr := r.Rollback(ctx); rerr != nil {
				e.log.Error("enrollment: rollback incomplete", "name", name, "err", rerr)
			}
		}
	}()
	// Renew (kur, signed by the certificate in force) when a certificate
	// in force, still in date, chains to this CA; when the configured
	// subject is no longer the certificate's, ask for a new certificate
	// signed by the one in force (cr, SR OS cmpv2 cert-request); else
	// enroll (ir, MAC).
	renew := cur != nil && !now.After(cur.NotAfter) && chainsTo(cur, curChain, pool, now)
	req := cmp.Request{Subject: spec.subject, DNSNames: spec.dns, IPAddresses: spec.ips, URIs: spec.uris, EmailAddresses: spec.emails,
		OnWaiting: func(id []byte, _ time.Duration) { en.setWaiting(name, id) }}
	var curKey crypto.Signer
	if curStorage != "" {
		if curKey, err = e.cfg.Keys[curStorage].Signer(ctx, name); err != nil {
			return out, fmt.Errorf("load the key of %s: %w", name, err)
		}
	}
	switch {
	case curKey == nil || (renew && spec.rekey):
		if req.Key, err = r.generateKey(ctx, spec.storage, spec.key); err != nil {
			return out, err
		}
	default:
		req.Key = curKey // the key of that name is certified (SR OS key-to-certify)
	}
	switch {
	case renew && !subjectIs(cur, spec.subject):
		kind = cmp.CR
		req.Kind = cmp.CR
		req.Protection = cmp.Signature{Cert: cur, Key: curKey, Chain: curChain[1:]}
	case renew:
		kind = cmp.KUR
		req.Kind, req.OldCert = cmp.KUR, cur
		req.Protection = cmp.Signature{Cert: cur, Key: curKey, Chain: curChain[1:]}
	default:
		kind = cmp.IR
		if prof.secret == nil {
			return out, fmt.Errorf("ca-profile %s: a first enrollment needs cmpv2 reference and secret (no certificate of this CA is in force to sign the request)", prof.name)
		}
		req.Kind, req.Protection = cmp.IR, cmp.PBM{Reference: prof.reference, Secret: prof.secret}
	}
	res, err := client.Enroll(ctx, req)
	if res != nil {
		tid = res.TransactionID
	}
	var ce *cmp.Error
	if errors.As(err, &ce) {
		tid = ce.TransactionID
	}
	en.contact(prof.name, err)
	if err != nil {
		return out, fmt.Errorf("%s to ca-profile %s: %w", kind, prof.name, err)
	}
	var buf []byte
	for _, c := range res.Chain {
		buf = append(buf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	imp, err := r.Install(ctx, string(buf))
	if err != nil {
		return out, fmt.Errorf("the certificate ca-profile %s issued is refused: %w", prof.name, err)
	}
	if err := r.Commit(); err != nil {
		e.log.Error("enrollment: the replaced key was not destroyed", "name", name, "err", err)
	}
	out = enrollOutcome{result: "enrolled", fingerprint: imp.FingerprintSHA256, notAfter: res.Cert.NotAfter}
	if renew {
		out.result = "renewed"
	}
	out.message = fmt.Sprintf("%s by %s, serial %s, valid until %s", kind, prof.name, hex.EncodeToString(res.Cert.SerialNumber.Bytes()), res.Cert.NotAfter.UTC().Format(time.RFC3339))
	e.publishCertificateEvent(map[bool]string{true: "renew", false: "enroll"}[renew], name, res.Cert.Subject.CommonName, imp.FingerprintSHA256, res.Cert.CRLDistributionPoints)
	return out, nil
}

// finishAttempt records the outcome of an attempt: state, retry schedule,
// alarm, counters, audit.
func (en *enroller) finishAttempt(name string, prof caProfile, kind cmp.Kind, tid []byte, out *enrollOutcome, err error) {
	e := en.e
	now := e.clock.Now()
	en.mu.Lock()
	delete(en.busy, name)
	st := en.stateOf(name)
	if tid != nil {
		st.transactionID = hex.EncodeToString(tid)
	}
	spec := en.specs[name]
	if err == nil {
		st.status, st.lastError, st.failures, st.retryAt = "idle", "", 0, time.Time{}
		st.lastSuccess = now
		e.stats.enrollOK.Add(1)
	} else {
		msg := redact.Message(err.Error())
		st.status, st.lastError = "failed", msg
		st.failures++
		d := spec.retry
		for i := 1; i < st.failures && d < maxRetryInterval; i++ {
			d *= 2
		}
		if d > maxRetryInterval || d <= 0 {
			d = maxRetryInterval
		}
		st.retryAt = now.Add(d)
		e.stats.enrollFail.Add(1)
		*out = enrollOutcome{result: "failed", message: msg}
	}
	en.poke() // the schedule follows the outcome
	en.mu.Unlock()

	e.mu.Lock()
	var cur *x509.Certificate
	if mc := e.certs[name]; mc != nil {
		cur = mc.cert
	}
	id := alarmEnrollment + name
	var tr expiry.Transition
	var changed bool
	if err == nil {
		tr, changed = e.alarms.Clear(id)
	} else {
		sev := expiry.SeverityMajor
		if cur == nil || now.After(cur.NotAfter) {
			sev = expiry.SeverityCritical
		}
		tr, changed = e.alarms.Set(expiry.Alarm{ID: id, Resource: "client-certificate " + name, Category: categoryEnrollment, Severity: sev,
			Text: fmt.Sprintf("client-certificate %s: enrollment from ca-profile %s failed (the certificate in force is kept; retrying): %s", name, prof.name, out.message)})
	}
	if changed {
		e.publishAlarm(tr)
	}
	e.publishStateLocked()
	e.mu.Unlock()

	detail := map[string]any{"name": name, "protocol": "cmpv2", "ca_profile": prof.name, "success": err == nil}
	if tid != nil {
		detail["transaction_id"] = hex.EncodeToString(tid)
	}
	if kind == cmp.KUR || kind == cmp.IR || kind == cmp.CR {
		detail["request"] = kind.String()
	}
	if err != nil {
		detail["error"] = out.message
		e.log.Warn("enrollment failed", "name", name, "ca_profile", prof.name, "err", out.message)
	} else if out.fingerprint != "" {
		detail["fingerprint"] = out.fingerprint
		if cur != nil {
			detail["serial"] = hex.EncodeToString(cur.SerialNumber.Bytes())
		}
		e.log.Info("certificate "+out.result, "name", name, "ca_profile", prof.name, "fingerprint", out.fingerprint, "not_after", out.notAfter)
	}
	e.auditEvent(enrollCaller, "system.enroll_certificate", fmt.Sprintf("enroll certificate %s from %s", name, prof.name), detail, err)
}

func (en *enroller) setWaiting(name string, tid []byte) {
	en.mu.Lock()
	st := en.stateOf(name)
	st.status, st.transactionID = "waiting", hex.EncodeToString(tid)
	en.mu.Unlock()
	en.e.publishState()
}

// contact records how the CA of a profile answered.
func (en *enroller) contact(profile string, err error) {
	now := en.e.clock.Now()
	en.mu.Lock()
	defer en.mu.Unlock()
	cs := en.cas[profile]
	if cs == nil {
		cs = &caState{}
		en.cas[profile] = cs
	}
	switch {
	case err == nil:
		cs.status, cs.lastContact, cs.lastError = "up", now, ""
	case errors.Is(err, cmp.ErrUnreachable) || errors.Is(err, cmp.ErrTimeout):
		cs.status, cs.lastError = "down", redact.Message(err.Error())
	default: // it answered, with an error
		cs.status, cs.lastContact, cs.lastError = "up", now, redact.Message(err.Error())
	}
}

// publishState publishes the engine's state now (outside a commit).
func (e *Engine) publishState() {
	e.mu.Lock()
	e.publishStateLocked()
	e.mu.Unlock()
}

// trustedCertsLocked are the certificates of a trusted CA. Engine.mu held.
func (e *Engine) trustedCertsLocked(name string) []*x509.Certificate {
	if t := e.trust.view().trusted[name]; t != nil && t.bundle != nil {
		return t.bundle.Certs
	}
	return nil
}

// expiryAlarms is the reconciler of /authority/expiry-alarms: the windows
// the evaluation grades expiry with.
type expiryAlarms struct {
	mu        sync.Mutex
	cur, prev expiry.Windows
}

func (x *expiryAlarms) id() string        { return "expiry-alarms" }
func (x *expiryAlarms) watches() []string { return []string{"expiry-alarms"} }

func (x *expiryAlarms) validate(_ context.Context, c *api.Commit, _ touched) error {
	_, err := windowsOf(authorityOf(c.New))
	return err
}

func (x *expiryAlarms) apply(_ context.Context, c *api.Commit, _ touched) error {
	w, err := windowsOf(authorityOf(c.New))
	if err != nil {
		return err
	}
	x.mu.Lock()
	x.prev, x.cur = x.cur, w
	x.mu.Unlock()
	return nil
}

func (x *expiryAlarms) finish(committed bool) {
	x.mu.Lock()
	if !committed {
		x.cur = x.prev
	}
	x.mu.Unlock()
}

func (x *expiryAlarms) windows() expiry.Windows {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.cur
}

func windowsOf(auth *gen.PkiAuthority_Authority) (expiry.Windows, error) {
	ea := auth.GetExpiryAlarms()
	if ea == nil {
		return expiry.DefaultWindows, nil
	}
	w := expiry.Windows{Minor: time.Duration(ea.GetMinorDays()) * 24 * time.Hour, Major: time.Duration(ea.GetMajorDays()) * 24 * time.Hour}
	if err := w.Check(); err != nil {
		return expiry.DefaultWindows, invalidAt(err, &gnmi.PathElem{Name: "expiry-alarms"}, &gnmi.PathElem{Name: "major-days"})
	}
	return w, nil
}

// issuingCA is the certificate of certs that issued none of the others:
// the CA nearest to the certificates it issues.
func issuingCA(certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		issuer := false
		for _, o := range certs {
			if o != c && string(o.RawIssuer) == string(c.RawSubject) && string(o.RawSubject) != string(c.RawSubject) {
				issuer = true
			}
		}
		if !issuer {
			return c
		}
	}
	return certs[0]
}

func chainsTo(cert *x509.Certificate, chainCerts []*x509.Certificate, roots *x509.CertPool, now time.Time) bool {
	inter := x509.NewCertPool()
	for _, c := range chainCerts[min(1, len(chainCerts)):] {
		inter.AddCert(c)
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

func fingerprintOf(c *x509.Certificate) string {
	return fmt.Sprintf("%x", sha256.Sum256(c.Raw))
}

// generateKey generates the key of this rotation in storage (it waits
// as NAME.certz-new until Install), replacing one generated before.
func (r *Rotation) generateKey(ctx context.Context, storage string, spec KeySpec) (crypto.Signer, error) {
	ks, ok := r.e.cfg.Keys[storage]
	if !ok {
		return nil, fmt.Errorf("%w: key-storage %s is not available (a TPM needs --tpm)", api.ErrInvalid, storage)
	}
	if err := r.dropNewKey(); err != nil {
		return nil, err
	}
	staged := r.name + api.RotateNewSuffix
	signer, err := ks.Generate(ctx, staged, spec)
	if errors.Is(err, keystore.ErrExists) { // left by an attempt a crash interrupted
		if d, ok := ks.(keyDeleter); ok {
			if derr := d.Delete(staged); derr == nil {
				signer, err = ks.Generate(ctx, staged, spec)
			}
		}
	}
	switch {
	case errors.Is(err, keystore.ErrUnsupported):
		return nil, fmt.Errorf("%w: %s storage cannot hold a %s key: %v", api.ErrInvalid, storage, spec, err)
	case err != nil:
		return nil, fmt.Errorf("generate a %s key for %s in %s storage: %w", spec, r.name, storage, err)
	}
	r.newKey, r.newStorage = signer, storage
	return signer, nil
}

// ---- rpc and state ------------------------------------------------------

// EnrollCertificate implements api.PKI: enroll or renew name now.
func (e *Engine) EnrollCertificate(ctx context.Context, c api.Caller, in api.EnrollCertificateInput) (api.EnrollCertificateOutput, error) {
	if err := checkName("enroll-certificate", in.Name); err != nil {
		return api.EnrollCertificateOutput{}, err
	}
	out, err := e.enroll.enroll(ctx, in.Name, c, in.Force)
	if err != nil && errors.Is(err, api.ErrInvalid) && out.result == "" {
		return api.EnrollCertificateOutput{}, err
	}
	res := api.EnrollCertificateOutput{Result: out.result, FingerprintSHA256: out.fingerprint, Message: out.message}
	if !out.notAfter.IsZero() {
		res.NotAfter = out.notAfter.UTC().Format(timeFormat)
	}
	return res, nil
}

// enrollStateLocked adds the enrollment state to d. Engine.mu held.
func (en *enroller) enrollStateLocked(d *gen.Device) {
	en.mu.Lock()
	defer en.mu.Unlock()
	ts := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		s := t.UTC().Format(timeFormat)
		return &s
	}
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	for _, name := range sortedKeys(en.specs) {
		st := en.stateOf(name)
		cs := d.GetOrCreateAuthority().GetOrCreateClientCertificate(name).GetOrCreateState()
		cs.EnrollmentStatus = map[string]gen.E_PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus{
			"idle": gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_idle, "enrolling": gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_enrolling,
			"waiting": gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_waiting, "failed": gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_failed,
		}[st.status]
		cs.LastAttempt, cs.LastSuccess, cs.NextRenewal = ts(st.lastAttempt), ts(st.lastSuccess), ts(st.nextRenew)
		cs.LastError, cs.TransactionId = str(st.lastError), str(st.transactionID)
	}
	for _, name := range sortedKeys(en.profiles) {
		ps := d.GetOrCreateAuthority().GetOrCreateCaProfile(name).GetOrCreateState()
		cs := en.cas[name]
		if cs == nil {
			cs = &caState{status: "unknown"}
		}
		ps.Status = map[string]gen.E_PkiAuthority_Authority_CaProfile_State_Status{
			"unknown": gen.PkiAuthority_Authority_CaProfile_State_Status_unknown, "up": gen.PkiAuthority_Authority_CaProfile_State_Status_up,
			"down": gen.PkiAuthority_Authority_CaProfile_State_Status_down,
		}[cs.status]
		ps.LastContact, ps.LastError = ts(cs.lastContact), str(cs.lastError)
	}
}

// subjectIs reports whether cert's subject, as encoded, is name (the
// comparison the CMP client makes of an issued certificate).
func subjectIs(cert *x509.Certificate, name pkix.Name) bool {
	var got pkix.RDNSequence
	rest, err := asn1.Unmarshal(cert.RawSubject, &got)
	return err == nil && len(rest) == 0 && got.String() == name.ToRDNSequence().String()
}
