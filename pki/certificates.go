package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/pki/importcheck"
)

// certificates is the reconciler of /authority/client-certificate: the
// names the configuration expects a certificate for (a name without one
// raises certificate-missing). The keys and certificates themselves
// (Engine.certs) come by rpcs (generate-private-key, import-certificate,
// certz) and are graded by the evaluation, under Engine.mu.
type certificates struct {
	mu      sync.Mutex
	clients map[string]bool
	// undo holds, for each name apply changed, whether it was configured
	// before; nil when nothing is prepared.
	undo map[string]bool
}

func newCertificates() *certificates { return &certificates{clients: map[string]bool{}} }

func (cs *certificates) id() string { return "certificates" }

func (cs *certificates) watches() []string { return []string{"client-certificate"} }

func (cs *certificates) validate(context.Context, *api.Commit, touched) error { return nil }

func (cs *certificates) apply(_ context.Context, c *api.Commit, t touched) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.undo = map[string]bool{}
	auth := authorityOf(c.New)
	for name := range t.entries("client-certificate", keysOf(cs.clients), keysOf(auth.ClientCertificate)) {
		cs.undo[name] = cs.clients[name]
		if auth.GetClientCertificate(name) != nil {
			cs.clients[name] = true
		} else {
			delete(cs.clients, name)
		}
	}
	return nil
}

func (cs *certificates) finish(committed bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if !committed {
		for name, was := range cs.undo {
			if was {
				cs.clients[name] = true
			} else {
				delete(cs.clients, name)
			}
		}
	}
	cs.undo = nil
}

// names lists the configured client certificates.
func (cs *certificates) names() []string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return sortedKeys(cs.clients)
}

// managedCert is a key of the device and the certificate imported for it.
type managedCert struct {
	name      string
	storage   string
	algorithm string
	// public is the key's public half (for /keys), created when its key
	// store wrote it (zero when the store cannot say).
	public  crypto.PublicKey
	created time.Time
	cert    *x509.Certificate
	chain   []*x509.Certificate
	status  string
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

// trustErr says whether mc's certificate still chains to a CA of store at
// now; the verdict (and the path) is cached until the trust store or the
// certificate changes or a certificate of the path expires.
func trustErr(mc *managedCert, store *importcheck.TrustStore, now time.Time) error {
	t := &mc.trust
	if t.store == store && t.store != nil && t.cert == mc.cert && now.Before(t.until) {
		return t.err
	}
	path, _, err := store.Verify(mc.cert, mc.chain[1:], now)
	t.store, t.cert, t.path, t.err, t.until = store, mc.cert, path, err, now.Add(time.Hour)
	for _, c := range path {
		if c.NotAfter.Before(t.until) {
			t.until = c.NotAfter
		}
	}
	return err
}
