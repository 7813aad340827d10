// Package pki is the PKI engine of the agent: it validates and applies the
// pki-authority configuration (trusted CA chains, client certificates), owns
// the device's keys and certificates (generate-private-key, generate-csr,
// import-certificate with the three checks), grades every certificate for
// expiry and revocation, raises and clears alarms, counts, audits, and
// publishes its state. It is the one place where generated structs become
// domain values; the crypto leaf packages beside it know nothing of gen.
//
// Dependencies point inward: agent (the datastore) and the northbound
// servers call the engine, and the engine knows them only through the
// contract of agent/api (commits, changes, events, rpc inputs and
// outputs, callers, error kinds). It never imports agent or northbound.
package pki

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/pki/chain"
	"github.com/pkiagent/pkiagent/pki/crl"
	"github.com/pkiagent/pkiagent/pki/expiry"
	"github.com/pkiagent/pkiagent/pki/importcheck"
	"github.com/pkiagent/pkiagent/pki/keystore"
	"github.com/pkiagent/pkiagent/pki/peer"
)

// KeyStore is what the engine needs of a key backend (file or TPM); the
// stores of pki/keystore/file and pki/keystore/tpm satisfy it.
type KeyStore interface {
	// Generate creates a key that never leaves the backend.
	Generate(ctx context.Context, name string, spec KeySpec) (crypto.Signer, error)
	// Signer returns a handle on an existing key.
	Signer(ctx context.Context, name string) (crypto.Signer, error)
	// Names lists the keys held.
	Names() ([]string, error)
}

// KeySpec describes a key to generate.
type KeySpec = keystore.KeySpec

// Publisher is the agent's event bus.
type Publisher interface {
	Publish(api.Event)
}

// Config builds an Engine.
type Config struct {
	StateDir string
	Node     string
	Clock    clock.Clock
	Logger   *slog.Logger
	Bus      Publisher
	Audit    *audit.Log
	// Keys by storage name: "file" always, "tpm" when a TPM is configured.
	Keys map[string]KeyStore
	// Revocation answers every revocation check (import check 3,
	// re-grading, peers); nil means the CRL manager New creates.
	Revocation importcheck.RevocationIndex
	// CRLFetch tunes the CRL fetcher (timeouts, size limit); zero values
	// take crl's documented defaults.
	CRLFetch crl.FetchOptions
	// PeerCacheSize bounds the cache of known revoked or expired peer
	// certificates (0: peer.DefaultCacheSize).
	PeerCacheSize int
	// EvaluateEvery is how often expiry is re-graded (default 1h).
	EvaluateEvery time.Duration
	// ServerCertName is the certificate the gNMI server serves
	// (--tls-cert-name), whose key delete-private-key refuses to destroy.
	ServerCertName string
}

// Engine implements api.Validator, api.Finisher, api.StateSource and
// api.PKI (agent's Validator, Finisher, StateSource and PKI are the same
// interfaces). It is safe for concurrent use.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock
	// crl keeps the CRLs (DIR/crl) and answers every revocation check.
	crl   *crl.Manager
	peers *peer.Validator

	mu       sync.Mutex
	trusted  map[string]*trustedCA
	trustAll *importcheck.TrustStore
	// configured is set once a configuration was applied (Load or a
	// commit): until then no certificate is judged against trust.
	configured bool
	clients    map[string]bool // configured client-certificate names
	certs      map[string]*managedCert
	alarms     *expiry.Tracker
	published  *gen.Device
	// prep is the commit between Apply and Finish (e.mu held meanwhile):
	// its events are staged on it, and it holds what Finish restores.
	prep    *prepared
	bundles sync.Map // sha256(content) -> checkedBundle, filled by Validate

	// CRL sources: configured, learned (URL -> what names it), and the
	// manager's state of each.
	crlConfig   map[string]crl.Source
	crlProxy    string
	crlDiscover bool
	learned     map[string][]string
	crlStates   map[string]crl.SourceState
	crlCAs      string // the CA set last given to the manager

	// Peer validation.
	routers    map[string]*routerConfig
	peerTrust  *peer.Anchors
	peerStates map[peerKey]peer.State

	stats stats
	// enroll enrolls and renews client certificates from CA profiles
	// (enroll.go); windows are the expiry alarm thresholds.
	enroll  *enroller
	windows expiry.Windows
	// durable is DIR/pki-state.*: alarms, peer verdicts, counters and CRL
	// schedules survive a restart (durable.go); nil once Run has ended.
	durable *durable
}

type routerConfig struct {
	validate bool
	action   peer.Action
	peers    map[string]string // peer name -> identifier
}

type peerKey struct{ router, peer string }

type trustedCA struct {
	name    string
	mode    string // strict | warn
	content string
	bundle  *chain.Bundle // re-checked by evaluateLocked as time passes
}

type managedCert struct {
	name      string
	storage   string
	algorithm string
	// public is the key's public half (for /keys).
	public crypto.PublicKey
	cert   *x509.Certificate
	chain  []*x509.Certificate
	status string
	// trust caches the last chain check: against which trust store, its
	// verdict, and until when that verdict holds (a CA of the path expires).
	trust struct {
		store *importcheck.TrustStore
		cert  *x509.Certificate   // the certificate judged (a re-import replaces it)
		path  []*x509.Certificate // the verified path, leaf first, root last
		err   error
		until time.Time
	}
}

// trustErr says whether mc's certificate still chains to a trusted CA at
// now; the verdict (and the path) is cached until the trust store or the
// certificate changes or a certificate of the path expires.
func (e *Engine) trustErr(mc *managedCert, now time.Time) error {
	t := &mc.trust
	if t.store == e.trustAll && t.store != nil && t.cert == mc.cert && now.Before(t.until) {
		return t.err
	}
	path, _, err := e.trustAll.Verify(mc.cert, mc.chain[1:], now)
	t.store, t.cert, t.path, t.err, t.until = e.trustAll, mc.cert, path, err, now.Add(time.Hour)
	for _, c := range path {
		if c.NotAfter.Before(t.until) {
			t.until = c.NotAfter
		}
	}
	return err
}

type stats struct {
	csrOK, csrFail, importOK, importFail  atomic.Uint64
	certExpired, certInvalid, certRevoked atomic.Uint64
	peerExpired, peerInvalid, peerRevoked atomic.Uint64
	enrollOK, enrollFail                  atomic.Uint64
}

// New returns an engine that has loaded the keys and certificates in
// cfg.StateDir, the CRL master list in cfg.StateDir/crl, and the alarms,
// peer verdicts, counters and CRL schedules it had when it last stopped
// (cfg.StateDir/pki-state.*; a damaged file is an error naming it). Run
// starts CRL polling.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.EvaluateEvery <= 0 {
		cfg.EvaluateEvery = time.Hour
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	if err := os.MkdirAll(certDir(cfg.StateDir), 0o700); err != nil {
		return nil, fmt.Errorf("certificate directory: %w", err)
	}
	if err := persist.CleanTemp(certDir(cfg.StateDir)); err != nil {
		return nil, fmt.Errorf("certificate directory: %w", err)
	}
	e := &Engine{
		cfg:     cfg,
		log:     cfg.Logger,
		clock:   cfg.Clock,
		trusted: map[string]*trustedCA{},
		clients: map[string]bool{},
		certs:   map[string]*managedCert{},
		alarms:  expiry.NewTracker(cfg.Clock),

		crlConfig:   map[string]crl.Source{},
		crlDiscover: true,
		learned:     map[string][]string{},
		crlStates:   map[string]crl.SourceState{},
		routers:     map[string]*routerConfig{},
		peerStates:  map[peerKey]peer.State{},
		windows:     expiry.DefaultWindows,
	}
	e.enroll = newEnroller(e)
	d, saved, err := openDurable(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	c := saved.counters
	resume := crl.Resume{States: saved.sources, Stats: crl.Stats{FetchSuccess: c.CRLFetchSuccess, FetchFailure: c.CRLFetchFailure,
		IngestionSuccess: c.CRLIngestionSuccess, IngestionFailure: c.CRLIngestionFailure}}
	m, err := crl.New(crl.Config{Dir: filepath.Join(cfg.StateDir, "crl"), Clock: cfg.Clock, Logger: cfg.Logger, Fetch: cfg.CRLFetch, OnEvent: e.onCRLEvent, Resume: resume})
	if err != nil {
		d.dir.Close()
		return nil, fmt.Errorf("CRL manager: %w", err)
	}
	e.crl = m
	if e.cfg.Revocation == nil {
		e.cfg.Revocation = m
	}
	e.peers = peer.NewValidator(e.cfg.Revocation, cfg.PeerCacheSize)
	for _, st := range m.States() {
		e.crlStates[st.URL] = st
	}
	if err := e.loadCertificates(ctx); err != nil {
		d.dir.Close()
		return nil, err
	}
	e.mu.Lock()
	e.durable = d
	e.restoreLocked(saved)
	e.evaluateLocked()
	e.mu.Unlock()
	return e, nil
}

func certDir(stateDir string) string { return filepath.Join(stateDir, "certs") }

// Load brings the engine in step with the running configuration read from
// disk at start-up.
func (e *Engine) Load(ctx context.Context, running *gen.Device) error {
	c := &api.Commit{Old: &gen.Device{}, New: running}
	if err := e.Apply(ctx, c); err != nil {
		return err
	}
	e.Finish(ctx, c, true)
	if e.cfg.Bus != nil {
		for _, ev := range c.Staged() {
			e.cfg.Bus.Publish(ev)
		}
	}
	return nil
}

// Run polls CRLs and re-grades every certificate periodically until ctx
// ends; it stops the CRL manager before it returns.
func (e *Engine) Run(ctx context.Context) error {
	defer e.closeDurable() // after the CRL manager's last events
	if err := e.crl.Start(ctx); err != nil {
		return err
	}
	defer e.crl.Stop()
	enrollDone := make(chan struct{})
	enrollCtx, stopEnroll := context.WithCancel(ctx)
	go func() {
		defer close(enrollDone)
		e.enroll.run(enrollCtx)
	}()
	defer func() { stopEnroll(); <-enrollDone }()
	t := e.clock.NewTimer(e.cfg.EvaluateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			e.Evaluate()
			t.Reset(e.cfg.EvaluateEvery)
		}
	}
}

// Evaluate re-grades every certificate and trusted CA now.
func (e *Engine) Evaluate() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evaluateLocked()
}

// ---- Validator and Applier ------------------------------------------------

// touchedTrusted returns the trusted-ca-certificate names a commit changes.
func touchedNames(c *api.Commit, list string) map[string]bool {
	out := map[string]bool{}
	for _, ch := range c.Changes {
		el := ch.Path.GetElem()
		if len(el) >= 2 && el[0].GetName() == "authority" && el[1].GetName() == list {
			out[el[1].GetKey()["name"]] = true
		}
	}
	return out
}

// checkedBundle is a parsed bundle and the time its verdict was reached.
type checkedBundle struct {
	b  *chain.Bundle
	at time.Time
}

// bundleFor parses and checks a trusted CA bundle, from the cache when the
// content was seen before and no certificate of it has become valid or
// expired since: the verdict depends on the time, not only on the bytes.
func (e *Engine) bundleFor(content string) (*chain.Bundle, error) {
	sum := sha256.Sum256([]byte(content))
	now := e.clock.Now()
	if v, ok := e.bundles.Load(sum); ok {
		cb := v.(checkedBundle)
		if !validityChangedBetween(cb.b.Certs, cb.at, now) {
			return cb.b, nil
		}
		b := chain.CheckBundle(cb.b.Certs, now)
		e.bundles.Store(sum, checkedBundle{b: b, at: now})
		return b, nil
	}
	b, err := chain.ParseBundle([]byte(content), now)
	if err != nil {
		return nil, err
	}
	e.bundles.Store(sum, checkedBundle{b: b, at: now})
	return b, nil
}

// validityChangedBetween reports whether a notBefore or notAfter of certs
// lies between a and b (inclusive), so a check made at a may not hold at b.
func validityChangedBetween(certs []*x509.Certificate, a, b time.Time) bool {
	if b.Before(a) {
		a, b = b, a
	}
	for _, c := range certs {
		for _, t := range []time.Time{c.NotBefore, c.NotAfter} {
			if !t.Before(a) && !t.After(b) {
				return true
			}
		}
	}
	return false
}

// Validate implements api.Validator: every trusted CA chain the commit
// adds or changes must parse; in strict mode it must also verify.
func (e *Engine) Validate(_ context.Context, c *api.Commit) error {
	var errs []error
	names := touchedNames(c, "trusted-ca-certificate")
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		ca := c.New.GetAuthority().GetTrustedCaCertificate(name)
		if ca == nil {
			continue
		}
		b, err := e.bundleFor(ca.GetContent())
		if err != nil {
			errs = append(errs, invalidAt(err,
				listElem("trusted-ca-certificate", "name", name), &gnmi.PathElem{Name: "content"}))
			continue
		}
		if ca.GetValidationMode() != gen.PkiAuthority_ValidationMode_warn {
			if err := b.Err(); err != nil {
				errs = append(errs, invalidAt(fmt.Errorf("validation-mode strict: %w", err),
					listElem("trusted-ca-certificate", "name", name), &gnmi.PathElem{Name: "content"}))
			}
		}
	}
	if _, err := crlSourcesOf(c.New.GetAuthority()); err != nil {
		errs = append(errs, err)
	}
	if err := e.validateEnrollment(c); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// invalidAt marks err as invalid config at /authority/elems..., so NETCONF
// reports an error-path and gNMI names the path.
func invalidAt(err error, elems ...*gnmi.PathElem) error {
	p := &gnmi.Path{Elem: append([]*gnmi.PathElem{{Name: "authority"}}, elems...)}
	return &api.PathError{Op: "validate", Path: api.PathString(p), Err: fmt.Errorf("%w: %w", api.ErrInvalid, err)}
}

func listElem(list, key, value string) *gnmi.PathElem {
	return &gnmi.PathElem{Name: list, Key: map[string]string{key: value}}
}

// crlSourcesOf returns the configured CRL sources (with the http-proxy of
// crl-settings), each checked to be pollable.
func crlSourcesOf(auth *gen.PkiAuthority_Authority) (map[string]crl.Source, error) {
	out := map[string]crl.Source{}
	if auth == nil {
		return out, nil
	}
	proxy := auth.GetCrlSettings().GetHttpProxy()
	var errs []error
	for url, l := range auth.CertificateRevocationList {
		s := crl.Source{
			URL:             url,
			PollingInterval: time.Duration(l.GetPollingInterval()) * time.Hour,
			BackoffInterval: time.Duration(l.GetBackoffInterval()) * time.Second,
			Proxy:           proxy,
		}
		if err := s.Validate(); err != nil {
			errs = append(errs, invalidAt(err,
				listElem("certificate-revocation-list", "url", url), &gnmi.PathElem{Name: "url"}))
			continue
		}
		out[url] = s
	}
	return out, errors.Join(errs...)
}

// Apply implements api.Applier. It cannot fail half way: the new trust
// set is built aside and swapped in. On success the engine holds the
// change (and e.mu) until the store calls Finish; its alarms and state
// changes are staged on c.
func (e *Engine) Apply(_ context.Context, c *api.Commit) error {
	auth := c.New.GetAuthority()
	if auth == nil {
		auth = &gen.PkiAuthority_Authority{}
	}
	trusted := map[string]*trustedCA{}
	for name, ca := range auth.TrustedCaCertificate {
		b, err := e.bundleFor(ca.GetContent())
		if err != nil {
			return fmt.Errorf("trusted-ca-certificate %s: %w", name, err)
		}
		mode := "strict"
		if ca.GetValidationMode() == gen.PkiAuthority_ValidationMode_warn {
			mode = "warn"
		}
		trusted[name] = &trustedCA{name: name, mode: mode, content: ca.GetContent(), bundle: b}
	}
	store, err := newTrustStore(trusted)
	if err != nil {
		return err
	}
	clients := map[string]bool{}
	for name := range auth.ClientCertificate {
		clients[name] = true
	}
	sources, err := crlSourcesOf(auth)
	if err != nil {
		return err
	}
	anchors, err := peerAnchors(trusted)
	if err != nil {
		return err
	}
	routers := routersOf(auth)
	enrolls, windows, err := enrollConfigOf(auth)
	if err != nil {
		return err
	}
	// e.mu stays held until Finish: readers (State) and background loops
	// wait, so nobody sees a change the store may still undo.
	e.mu.Lock()
	e.prep = e.prepareLocked(c)
	e.trusted, e.trustAll, e.clients = trusted, store, clients
	e.configured = true
	e.crlConfig, e.crlProxy = sources, auth.GetCrlSettings().GetHttpProxy()
	e.crlDiscover = auth.GetCrlSettings().GetDiscoverFromCertificates()
	e.routers, e.peerTrust = routers, anchors
	e.retainPeersLocked()
	e.windows = windows
	e.enroll.stage(enrolls)
	e.prep.crl = e.planCRLLocked()
	e.evaluateLocked()
	return nil
}

func peerAnchors(trusted map[string]*trustedCA) (*peer.Anchors, error) {
	bundles := map[string][]*x509.Certificate{}
	for name, t := range trusted {
		bundles[name] = t.bundle.Certs
	}
	return peer.NewAnchors(bundles)
}

func newTrustStore(trusted map[string]*trustedCA) (*importcheck.TrustStore, error) {
	var bundles []importcheck.TrustedCA
	for name, t := range trusted {
		if len(t.bundle.Certs) == 0 {
			continue
		}
		bundles = append(bundles, importcheck.TrustedCA{Name: name, Certs: t.bundle.Certs})
	}
	if len(bundles) == 0 {
		return nil, nil
	}
	return importcheck.NewTrustStore(bundles)
}
