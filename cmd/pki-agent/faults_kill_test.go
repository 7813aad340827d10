package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"log/slog"
	"maps"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/pki/crl"
)

// crlServer serves, on 127.0.0.1, a big CRL of root, a newer one (its
// number grows) whenever one is ready, so fetches make the agent ingest
// and save it again. Signing a big CRL takes long under -race, so the next
// one is made in the background once the current one has been served.
type crlServer struct {
	url string

	mu     sync.Mutex
	cur    []byte
	next   chan []byte // the next CRL, when made
	making bool
}

func newCRLServer(t *testing.T, root *testpki.Cert, entries int) *crlServer {
	t.Helper()
	serials := make([]*big.Int, entries)
	for i := range serials {
		serials[i] = big.NewInt(int64(0x100000 + i))
	}
	var number atomic.Int64
	make1 := func() []byte {
		now := time.Now()
		der, err := testpki.CRLWith(root, testpki.CRLOptions{Revoked: serials, ThisUpdate: now.Add(-time.Minute),
			NextUpdate: now.Add(24 * time.Hour), Number: number.Add(1)})
		if err != nil {
			panic(err)
		}
		return der
	}
	s := &crlServer{cur: make1(), next: make(chan []byte, 1)}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		select {
		case der := <-s.next:
			s.cur, s.making = der, false
		default:
		}
		der := s.cur
		if !s.making {
			s.making = true
			go func() {
				select {
				case s.next <- make1():
				case <-done:
				}
			}()
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(der)
	}))
	t.Cleanup(func() { srv.Close(); close(done) })
	s.url = srv.URL + "/faults.crl"
	return s
}

// valueWriter is one client writing the values v1, v2, ... to the
// peering-common-name of its own router. acked is the last value whose
// write was acknowledged, tried the last one sent; after a crash running
// must hold acked or (if the crash hit it in flight) tried.
type valueWriter struct {
	router       string
	acked, tried int
	// lastAck is when acked was acknowledged.
	lastAck time.Time
}

// allowed reports whether v (a peering-common-name, "" for none) is what
// running may hold for this writer after a crash.
func (w *valueWriter) allowed(v string) bool {
	if v == "" {
		return w.acked == 0
	}
	return v == valueName(w.acked) || v == valueName(w.tried)
}

func valueName(n int) string {
	if n == 0 {
		return ""
	}
	return "v" + strconv.Itoa(n)
}

// TestFaultKill9DuringWrites kills the agent (SIGKILL) at random moments
// while gNMI Sets, NETCONF edit-config+commit, key generation (RSA too)
// and the ingest of a big CRL run, and restarts it on the same state
// directory each time. It must start; every acknowledged write is there;
// nothing that was not written appears; every state file parses (nothing
// half-written); temporary files left by the crash are removed at start.
func TestFaultKill9DuringWrites(t *testing.T) {
	rng := faultRand(t)
	rounds := faultCount(2, 12)
	maxRun := faultDuration(2*time.Second, 5*time.Second)
	entries := faultCount(20000, 100000)
	state := filepath.Join(t.TempDir(), "state")
	root := testpki.Must(testpki.New(time.Now()).Root(testpki.Options{CN: "faults CRL root"}))
	srv := newCRLServer(t, root, entries)

	gw := []*valueWriter{{router: "g-1"}, {router: "g-2"}, {router: "g-3"}}
	nw := []*valueWriter{{router: "n-1"}, {router: "n-2"}}
	ackedKeys := map[string]bool{}
	ackedCerts := map[string][32]byte{} // name: SHA-256 of the certificate
	crlAcked := false
	// lastNCCommit is when the last NETCONF commit was answered, or the
	// kill time if one was cut by it; maybeKeys the keys whose generation a
	// kill cut.
	var lastNCCommit time.Time
	maybeKeys, maybeCerts := map[string]bool{}, map[string]bool{}

	p := runAgentBinary(t, state)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	{
		c, err := dialNC(ctx, logAttr(p.logged(t, "serving NETCONF"), "addr"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.call(ctx, `<edit-config><target><candidate/></target><config><authority `+pkaNS+`><trusted-ca-certificate><name>faults-ca</name><content>`+
			html.EscapeString(string(testpki.PEM(root)))+`</content></trusted-ca-certificate><certificate-revocation-list><url>`+html.EscapeString(srv.url)+
			`</url></certificate-revocation-list></authority></config></edit-config>`); err != nil {
			t.Fatalf("configure the CRL source: %v", err)
		}
		if _, err := c.call(ctx, `<commit/>`); err != nil {
			t.Fatalf("commit the CRL source: %v", err)
		}
		c.close()
	}

	failedBefore := false
	for round := 1; round <= rounds; round++ {
		ncAddr := logAttr(p.logged(t, "serving NETCONF"), "addr")
		g := gnmiClient(t, p, state)
		var sessions []*ncSession
		for range len(nw) + 2 { // the NETCONF writers, keys, CRL refreshes
			s, err := dialNC(ctx, ncAddr)
			if err != nil {
				t.Fatalf("round %d: NETCONF: %v", round, err)
			}
			sessions = append(sessions, s)
		}

		var killed atomic.Bool
		var mu sync.Mutex
		var unexpected []string
		fail := func(who string, err error) {
			if killed.Load() {
				return // the kill cut it: in flight
			}
			mu.Lock()
			unexpected = append(unexpected, fmt.Sprintf("%s: %v", who, err))
			mu.Unlock()
		}
		wctx, stopWriters := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, w := range gw {
			wg.Go(func() {
				for wctx.Err() == nil {
					w.tried = w.acked + 1
					if err := setCN(wctx, g, w.router, valueName(w.tried)); err != nil {
						fail("gNMI Set "+w.router, err)
						return
					}
					w.acked, w.lastAck = w.tried, time.Now()
				}
			})
		}
		var commitMu sync.Mutex
		for i, w := range nw {
			s := sessions[i]
			wg.Go(func() {
				for wctx.Err() == nil {
					w.tried = w.acked + 1
					if _, err := s.call(wctx, ncEditRouters("candidate", map[string]string{w.router: valueName(w.tried)})); err != nil {
						fail("NETCONF edit-config "+w.router, err)
						return
					}
					_, err := s.call(wctx, `<commit/>`)
					commitMu.Lock()
					lastNCCommit = time.Now()
					commitMu.Unlock()
					if err != nil {
						fail("NETCONF commit "+w.router, err)
						return
					}
					w.acked, w.lastAck = w.tried, time.Now()
				}
			})
		}
		// Keys, and for every other ECC key a certificate: generate-csr,
		// signed by root, import-certificate.
		var triedKey, triedCert string
		wg.Go(func() {
			s := sessions[len(nw)]
			for n := 1; wctx.Err() == nil; n++ {
				name := fmt.Sprintf("k-%d-%d", round, n)
				alg := `<algorithm>ecc</algorithm><ecc-curve>secp384r1</ecc-curve>`
				switch {
				case n%5 == 0 && faultsLong():
					alg = `<algorithm>rsa</algorithm><rsa-key-size>3072</rsa-key-size>`
				case n%3 == 0:
					alg = `<algorithm>rsa</algorithm><rsa-key-size>2048</rsa-key-size>`
				}
				triedKey = name
				if _, err := s.call(wctx, `<generate-private-key `+pkaNS+`><name>`+name+`</name>`+alg+`</generate-private-key>`); err != nil {
					fail("generate-private-key "+name, err)
					return
				}
				mu.Lock()
				ackedKeys[name] = true
				mu.Unlock()
				if n%2 == 0 {
					continue
				}
				body, err := s.call(wctx, `<generate-csr `+pkaNS+`><name>`+name+`</name><common-name>`+name+`.example.net</common-name></generate-csr>`)
				if err != nil {
					fail("generate-csr "+name, err)
					return
				}
				m := csrElem.FindStringSubmatch(body)
				if m == nil {
					fail("generate-csr "+name, fmt.Errorf("no csr in %.300s", body))
					return
				}
				leaf, err := issueCert(root, []byte(html.UnescapeString(m[1])))
				if err != nil {
					fail("sign the CSR of "+name, err)
					return
				}
				triedCert = name
				leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
				if _, err := s.call(wctx, `<import-certificate `+pkaNS+`><name>`+name+`</name><certificate>`+html.EscapeString(string(leafPEM))+`</certificate></import-certificate>`); err != nil {
					fail("import-certificate "+name, err)
					return
				}
				sum := sha256.Sum256(leaf.Raw)
				mu.Lock()
				ackedCerts[name] = sum
				mu.Unlock()
			}
		})
		wg.Go(func() {
			s := sessions[len(nw)+1]
			for wctx.Err() == nil {
				body, err := s.call(wctx, `<refresh-certificate-revocation-list `+pkaNS+`><url>`+html.EscapeString(srv.url)+`</url></refresh-certificate-revocation-list>`)
				if err == nil && !strings.Contains(body, "<success>true</success>") {
					err = fmt.Errorf("refresh failed: %.300s", body)
				}
				if err != nil {
					fail("refresh-certificate-revocation-list", err)
					return
				}
				mu.Lock()
				crlAcked = true
				mu.Unlock()
			}
		})

		wait := time.Duration(100+rng.IntN(int(maxRun/time.Millisecond)-100)) * time.Millisecond
		time.Sleep(wait)
		killed.Store(true)
		kill9(t, p)
		stopWriters()
		wg.Wait()
		for _, s := range sessions {
			s.close()
		}
		t.Logf("round %d: killed after %v; acked gNMI %v, NETCONF %v, keys %d, certificates %d, CRL %v", round, wait,
			ackedValues(gw), ackedValues(nw), len(ackedKeys), len(ackedCerts), crlAcked)
		if len(unexpected) > 0 {
			t.Errorf("round %d: errors before the kill:\n%s", round, strings.Join(unexpected, "\n"))
		}

		leftovers := checkStateFiles(t, state, fmt.Sprintf("round %d, after the kill", round))
		planted := plantTempFiles(t, state, rng)
		p = runAgentBinary(t, state)
		for _, f := range append(leftovers, planted...) {
			if _, err := os.Lstat(f); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("round %d: temporary file %s is still there after the restart (err %v)", round, f, err)
			}
		}

		c, err := dialNC(ctx, logAttr(p.logged(t, "serving NETCONF"), "addr"))
		if err != nil {
			t.Fatalf("round %d: NETCONF after the restart: %v", round, err)
		}
		running, err := runningRouters(ctx, c)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, w := range gw {
			if v := running[w.router]; !w.allowed(v) {
				hint := ""
				if lastNCCommit.After(w.lastAck) {
					hint = " (a NETCONF candidate commit ended after it was acknowledged: finding 3, a candidate commit reverting gNMI Sets, would explain it)"
				}
				t.Errorf("round %d: gNMI writer %s: running holds %q; acknowledged %q, in flight %q%s", round, w.router, v, valueName(w.acked), valueName(w.tried), hint)
			}
		}
		for _, w := range nw {
			if v := running[w.router]; !w.allowed(v) {
				t.Errorf("round %d: NETCONF writer %s: running holds %q; acknowledged %q, in flight %q", round, w.router, v, valueName(w.acked), valueName(w.tried))
			}
		}
		for name := range running {
			if !slices.ContainsFunc(append(slices.Clone(gw), nw...), func(w *valueWriter) bool { return w.router == name }) {
				t.Errorf("round %d: running holds router %q that nobody wrote", round, name)
			}
		}
		maybeKeys[triedKey], maybeCerts[triedCert] = true, true
		certs, err := certificates(ctx, c)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for name := range ackedKeys {
			if _, ok := certs[name]; !ok {
				t.Errorf("round %d: acknowledged key %s is gone after the restart", round, name)
			}
		}
		for name := range certs {
			if !ackedKeys[name] && !maybeKeys[name] {
				t.Errorf("round %d: key %s appeared, never generated (in flight at a kill: %v)", round, name, slices.Sorted(maps.Keys(maybeKeys)))
			}
		}
		for name, sum := range ackedCerts {
			if got := certs[name]; !fingerprintIs(got, sum) {
				t.Errorf("round %d: the acknowledged certificate of %s is gone after the restart: fingerprint %q", round, name, got)
			}
		}
		for name, got := range certs {
			if _, acked := ackedCerts[name]; got != "" && !acked && !maybeCerts[name] {
				t.Errorf("round %d: key %s has a certificate that was never imported (in flight at a kill: %v)", round, name, slices.Sorted(maps.Keys(maybeCerts)))
			}
		}
		if crlAcked {
			l := p.logged(t, "reloaded the CRL master list")
			if got := logAttr(l, "revoked"); got != strconv.Itoa(entries) {
				t.Errorf("round %d: the CRL master list reloaded %s revoked serials, want %d: %s", round, got, entries, l)
			}
		}
		c.close()
		if t.Failed() && !failedBefore {
			// Go on: later rounds show whether the next faults differ.
			t.Logf("round %d: the agent's log, last lines:\n%s", round, tailLog(p, 40))
			failedBefore = true
		}
	}
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, tailLog(p, 40))
	}
}

func ackedValues(ws []*valueWriter) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.router+"="+valueName(w.acked))
	}
	return out
}

// isTempName reports whether a file name is a temporary file of the
// agent's durable writers (.NAME.tmp-RANDOM).
func isTempName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// checkStateFiles checks, while the agent is down, that every file of the
// state directory parses as what it is, and returns the temporary files
// the crash left (which the next start must remove).
func checkStateFiles(t *testing.T, state, when string) (leftovers []string) {
	t.Helper()
	bad := func(path string, err error) { t.Errorf("%s: %s is half-written or damaged: %v", when, path, err) }
	filepath.WalkDir(state, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			bad(path, err)
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		name, rel := d.Name(), strings.TrimPrefix(path, state+"/")
		if isTempName(name) || strings.HasSuffix(name, ".tmp") {
			leftovers = append(leftovers, path)
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			bad(path, err)
			return nil
		}
		switch {
		case strings.HasSuffix(name, ".json"):
			if !json.Valid(b) {
				bad(path, errors.New("not JSON"))
			}
		case name == "audit.log":
			for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				if l != "" && !json.Valid([]byte(l)) {
					bad(path, fmt.Errorf("line %d is not JSON", i+1))
				}
			}
			if len(b) > 0 && b[len(b)-1] != '\n' {
				bad(path, errors.New("the last record has no newline"))
			}
		case name == "ssh_host_ed25519_key":
			if _, err := ssh.ParseRawPrivateKey(b); err != nil {
				bad(path, err)
			}
		case (strings.HasPrefix(rel, "keys/") || strings.HasPrefix(rel, "tls/")) && strings.HasSuffix(name, ".key"):
			blk, _ := pem.Decode(b)
			if blk == nil {
				bad(path, errors.New("no PEM block"))
			} else if _, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
				bad(path, err)
			}
		case strings.HasPrefix(rel, "certs/") || strings.HasPrefix(rel, "tls/") && strings.HasSuffix(name, ".pem"):
			n := 0
			for rest := b; ; n++ {
				var blk *pem.Block
				if blk, rest = pem.Decode(rest); blk == nil {
					break
				}
				if blk.Type == "CERTIFICATE" {
					if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
						bad(path, err)
					}
				}
			}
			if n == 0 {
				bad(path, errors.New("no PEM block"))
			}
		case strings.HasPrefix(rel, "crl/installed/") && strings.HasSuffix(name, ".crl"):
			if _, err := x509.ParseRevocationList(b); err != nil {
				bad(path, err)
			}
		}
		return nil
	})
	// The journals and their snapshots load, on a copy (Load may cut a
	// torn last record, which is allowed: it was never acknowledged): the
	// running configuration and the PKI engine's state (pki-state).
	cp := t.TempDir()
	for _, f := range []string{persist.SnapshotFile, persist.JournalFile, "pki-state.json", "pki-state.journal"} {
		if b, err := os.ReadFile(filepath.Join(state, f)); err == nil {
			os.WriteFile(filepath.Join(cp, f), b, 0o600)
		}
	}
	if d, err := persist.Open(cp); err != nil {
		t.Errorf("%s: %v", when, err)
	} else {
		if _, _, err := d.Load(); err != nil {
			bad(filepath.Join(state, persist.JournalFile), err)
		}
		if j, err := persist.OpenJournal(cp, "pki-state"); err != nil {
			t.Errorf("%s: %v", when, err)
		} else {
			if _, _, err := j.Load(); err != nil {
				bad(filepath.Join(state, "pki-state.journal"), err)
			}
			j.Close()
		}
		d.Close()
	}
	if b, err := os.ReadFile(filepath.Join(state, "crl", crl.MasterFile)); err == nil {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, crl.MasterFile), b, 0o600)
		if _, err := crl.New(crl.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			bad(filepath.Join(state, "crl", crl.MasterFile), err)
		}
	}
	return leftovers
}

// plantTempFiles leaves, in each directory the agent writes durably,
// a temporary file as a crash inside a write leaves it, and returns them.
func plantTempFiles(t *testing.T, state string, rng *rand.Rand) []string {
	t.Helper()
	var out []string
	for _, f := range []string{
		persist.SnapshotFile, "users.json", "certs/k.pem", "keys/k.key", "tls/server.pem", "crl/" + crl.MasterFile,
	} {
		dir, base := filepath.Split(filepath.Join(state, f))
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		p := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rng.Uint64(), 10))
		if err := os.WriteFile(p, []byte("torn"), 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// fingerprintIs reports whether a fingerprint as /certificates shows it
// (hex, any case, colons or not) is sum.
func fingerprintIs(shown string, sum [32]byte) bool {
	return strings.EqualFold(strings.ReplaceAll(shown, ":", ""), hex.EncodeToString(sum[:]))
}
