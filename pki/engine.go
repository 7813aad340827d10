// Package pki is the PKI engine of the agent: it validates and applies the
// pki-authority configuration (trusted CA chains, client certificates), owns
// the device's keys and certificates (generate-private-key, generate-csr,
// import-certificate with the three checks), grades every certificate for
// expiry and revocation, raises and clears alarms, counts, audits, and
// publishes its state. It is the one place where generated structs become
// domain values; the crypto leaf packages beside it know nothing of gen.
//
// The engine is a set of reconcilers (reconciler.go), after lemming's:
// trust (trusted-ca-certificate), certificates (client-certificate),
// revocation (certificate-revocation-list, crl-settings: the CRL manager)
// and peers (router). Each has its own lock and state and sees only the
// commits that touch what it watches, and only what they touch; the
// evaluation (evaluate.go) grades certificates against them and stages
// alarms and state on the commit, published by the store once it is
// saved. Certificates come in by one path (import.go), shared by
// import-certificate and gNSI certz.
//
// Dependencies point inward: agent (the datastore) and the northbound
// servers call the engine, and the engine knows them only through the
// contract of agent/api (commits, changes, events, rpc inputs and
// outputs, callers, error kinds). It never imports agent or northbound.
package pki

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/persist"
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

// Config builds an Engine.
type Config struct {
	StateDir string
	Node     string
	Clock    clock.Clock
	Logger   *slog.Logger
	Bus      api.Publisher
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
// api.PKI. It is safe for concurrent use.
//
// It is a set of reconcilers (reconciler.go), each with its own lock and
// state: trust, certificates, revocation, peers, enrollment and the
// expiry alarm windows. Engine.mu is the lock
// of what crosses them: the keys and certificates, their grades, the
// alarms, the state published, and the commit held between Apply and
// Finish. Lock order: Engine.mu, then a reconciler's.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock
	peers *peer.Validator

	trust        *trust
	certificates *certificates
	revocation   *revocation
	routers      *peers
	enroll       *enroller
	expiryAlarms *expiryAlarms
	// reconcilers in the order a commit is validated and applied.
	reconcilers []reconciler

	mu sync.Mutex
	// configured is set once a configuration was applied (Load or a
	// commit): until then no certificate is judged against trust.
	configured bool
	certs      map[string]*managedCert
	alarms     *expiry.Tracker
	published  *gen.Device // without the routers' state (peers.published)
	// prep is the commit between Apply and Finish (e.mu held meanwhile):
	// its events are staged on it, and it holds what Finish restores.
	prep *prepared

	stats stats
	// durable is DIR/pki-state.*: alarms, peer verdicts, counters and CRL
	// schedules survive a restart (durable.go); nil once Run has ended.
	durable *durable
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
		cfg:          cfg,
		log:          cfg.Logger,
		clock:        cfg.Clock,
		trust:        newTrust(cfg.Clock),
		certificates: newCertificates(),
		revocation:   newRevocation(),
		routers:      newPeers(),
		certs:        map[string]*managedCert{},
		alarms:       expiry.NewTracker(cfg.Clock),
	}
	e.enroll = newEnroller(e)
	e.expiryAlarms = &expiryAlarms{cur: expiry.DefaultWindows}
	e.reconcilers = []reconciler{e.trust, e.certificates, e.revocation, e.routers, e.enroll, e.expiryAlarms}
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
	e.revocation.m = m
	if e.cfg.Revocation == nil {
		e.cfg.Revocation = m
	}
	e.peers = peer.NewValidator(e.cfg.Revocation, cfg.PeerCacheSize)
	for _, st := range m.States() {
		e.revocation.states[st.URL] = st
	}
	if err := e.loadCertificates(ctx); err != nil {
		d.dir.Close()
		return nil, err
	}
	e.mu.Lock()
	e.durable = d
	e.restoreLocked(saved)
	e.evaluateLocked(true)
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
	if err := e.revocation.m.Start(ctx); err != nil {
		return err
	}
	defer e.revocation.m.Stop()
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
	e.evaluateLocked(true)
}

// invalidAt marks err as invalid config at /authority/elems..., so NETCONF
// reports an error-path and gNMI names the path.
func invalidAt(err error, elems ...*gnmi.PathElem) error {
	p := &gnmi.Path{Elem: append([]*gnmi.PathElem{{Name: "authority"}}, elems...)}
	return &api.PathError{Op: "validate", Path: p, Err: fmt.Errorf("%w: %w", api.ErrInvalid, err)}
}

func listElem(list, key, value string) *gnmi.PathElem {
	return &gnmi.PathElem{Name: list, Key: map[string]string{key: value}}
}

// crlSourcesOf returns the configured CRL sources (with the http-proxy of
// crl-settings), each checked to be pollable.
func crlSourcesOf(auth *gen.PkiAuthority_Authority) (map[string]crl.Source, error) {
	out := map[string]crl.Source{}
	proxy := auth.GetCrlSettings().GetHttpProxy()
	var errs []error
	for url, l := range auth.CertificateRevocationList {
		s, err := crlSource(url, l, proxy)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[url] = s
	}
	return out, errors.Join(errs...)
}

// crlSource is the configured source url, checked to be pollable.
func crlSource(url string, l *gen.PkiAuthority_Authority_CertificateRevocationList, proxy string) (crl.Source, error) {
	s := crl.Source{
		URL:             url,
		PollingInterval: time.Duration(l.GetPollingInterval()) * time.Hour,
		BackoffInterval: time.Duration(l.GetBackoffInterval()) * time.Second,
		Proxy:           proxy,
	}
	if err := s.Validate(); err != nil {
		return s, invalidAt(err, listElem("certificate-revocation-list", "url", url), &gnmi.PathElem{Name: "url"})
	}
	return s, nil
}
