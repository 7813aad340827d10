package cmp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

var sr = pkix.Name{Country: []string{"NL"}, Province: []string{"ZH"}, Organization: []string{"Nokia"}, CommonName: "sr"}

func pbmRequest(r *responder, key crypto.Signer) Request {
	return Request{Kind: IR, Key: key, Subject: sr, DNSNames: []string{"sr.example.net"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}, Protection: PBM{Reference: "ref", Secret: r.secret}}
}

func sigRequest(t *testing.T, r *responder, kind Kind, key crypto.Signer) Request {
	old := testpki.Must(r.gen.Issue(r.ca, testpki.Options{Subject: &sr}))
	return Request{Kind: kind, Key: key, Subject: sr, Protection: Signature{Cert: old.Cert, Key: old.Key}}
}

func TestEnroll(t *testing.T) {
	for _, tc := range []struct {
		desc string
		kind Kind
		pbm  bool
		key  testpki.KeyType
		set  func(r *responder)
		// want is the body types the responder receives.
		want []int
	}{
		{desc: "ir PBM", kind: IR, pbm: true, want: []int{bodyIR, bodyCertConf}},
		{desc: "ir signature Ed25519", kind: IR, key: testpki.Ed25519, want: []int{bodyIR, bodyCertConf}},
		{desc: "cr signature RSA", kind: CR, key: testpki.RSA2048, want: []int{bodyCR, bodyCertConf}},
		{desc: "kur signed by Ed25519 responder", kind: KUR, set: func(r *responder) {
			r.signer = testpki.Must(r.gen.Issue(r.ca, testpki.Options{CN: "Ed CMP", KeyType: testpki.Ed25519, NoExtKeyUsage: true}))
		}, want: []int{bodyKUR, bodyCertConf}},
		{desc: "waiting then granted", kind: CR, set: func(r *responder) { r.waiting = 2 },
			want: []int{bodyCR, bodyPollReq, bodyPollReq, bodyPollReq, bodyCertConf}},
		{desc: "caPubs of another CA dropped", kind: IR, pbm: true, set: func(r *responder) {
			r.moreCAPubs = []*x509.Certificate{newResponder(t).ca.Cert}
		}, want: []int{bodyIR, bodyCertConf}},
		{desc: "implicit confirm granted", kind: IR, pbm: true, set: func(r *responder) { r.grantImplicit = true },
			want: []int{bodyIR}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := newResponder(t)
			if tc.set != nil {
				tc.set(r)
			}
			c := r.start(t)
			key := testpki.Must(testpki.NewKey(tc.key))
			req := sigRequest(t, r, tc.kind, key)
			if tc.pbm {
				req = pbmRequest(r, key)
			}
			req.ImplicitConfirm = true
			waits := 0
			req.OnWaiting = func(tid []byte, _ time.Duration) {
				if len(tid) == 16 {
					waits++
				}
			}
			res, err := c.Enroll(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if waits != r.polls {
				t.Fatalf("OnWaiting called %d times, CA answered waiting %d times", waits, r.polls)
			}
			if !publicKeysEqual(res.Cert.PublicKey, key.Public()) || res.Cert.Subject.String() != sr.String() {
				t.Fatalf("got %v", res.Cert.Subject)
			}
			if len(res.CAPubs) != 1 || len(res.Chain) != 2 || res.ImplicitConfirm != (len(tc.want) == 1) {
				t.Fatalf("caPubs %d chain %d implicit %v", len(res.CAPubs), len(res.Chain), res.ImplicitConfirm)
			}
			if got := r.received; !equalInts(got, tc.want) {
				t.Fatalf("responder received %v, want %v", got, tc.want)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEnrollBadInput: each way a CA can answer wrong is a clear error of
// its kind, and a refused certificate is refused in certConf too.
func TestEnrollBadInput(t *testing.T) {
	other := newResponder(t) // another PKI, nobody trusts it
	for _, tc := range []struct {
		desc    string
		sig     bool // signature protection (else PBM)
		set     func(r *responder, c *Client)
		want    error
		words   string // in the error text
		refused bool   // a certConf with rejection was sent
	}{
		{desc: "garbage body", set: func(r *responder, c *Client) {
			r.reply = func(*message) []byte { return []byte("<html>hello</html>") }
		}, want: ErrBadResponse, words: "not a CMP message"},
		{desc: "truncated DER", set: func(r *responder, c *Client) {
			r.reply = func(m *message) []byte { b := r.answer(m); return b[:len(b)/2] }
		}, want: ErrBadResponse, words: "not a CMP message"},
		{desc: "truncated HTTP body", set: func(r *responder, c *Client) {
			c.URL = cutShort(t, r)
		}, want: ErrBadResponse, words: "cut short"},
		{desc: "oversized body", set: func(r *responder, c *Client) {
			r.reply = func(*message) []byte { return bytes.Repeat([]byte{0x30}, MaxResponseSize+1) }
		}, want: ErrBadResponse, words: "larger than"},
		{desc: "HTTP error", set: func(r *responder, c *Client) {
			c.URL = serve(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", 503) })
		}, want: ErrBadResponse, words: "HTTP 503"},
		{desc: "wrong content type", set: func(r *responder, c *Client) {
			c.URL = serve(t, func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html/>")) })
		}, want: ErrBadResponse, words: "content type"},
		{desc: "wrong transaction ID", set: func(r *responder, c *Client) {
			r.editHeader = func(h *header) { h.transactionID = bytes.Repeat([]byte{1}, 16) }
		}, want: ErrBadResponse, words: "transaction ID"},
		{desc: "wrong recipNonce", set: func(r *responder, c *Client) {
			r.editHeader = func(h *header) { h.recipNonce = bytes.Repeat([]byte{2}, 16) }
		}, want: ErrBadResponse, words: "nonce"},
		{desc: "no recipNonce", set: func(r *responder, c *Client) {
			r.editHeader = func(h *header) { h.recipNonce = nil }
		}, want: ErrBadResponse, words: "nonce"},
		{desc: "answer of the wrong type", set: func(r *responder, c *Client) {
			r.editBody = func(int, []byte) (int, []byte) { return bodyKUP, certRepBody(nil, nil, statusAccepted, -1) }
		}, want: ErrBadResponse, words: "answered our ir with kup"},
		{desc: "PBM with another secret", set: func(r *responder, c *Client) {
			r.secret = []byte("other")
		}, want: ErrProtection, words: "fails its protection check"},
		{desc: "PBM with absurd iterations", set: func(r *responder, c *Client) {
			r.editHeader = func(h *header) {
				h.protectionAlg = (&pbmParams{salt: []byte("s"), owf: crypto.SHA256, iterations: 1 << 30, mac: crypto.SHA256}).algorithmIdentifier()
			}
		}, want: ErrProtection, words: "iteration count"},
		{desc: "unprotected answer", set: func(r *responder, c *Client) {
			r.editHeader = func(h *header) { h.protectionAlg = nil }
			r.protect = func([]byte) ([]byte, []*x509.Certificate) { return nil, nil }
		}, want: ErrProtection, words: "not protected"},
		{desc: "signed by another CA's key", sig: true, set: func(r *responder, c *Client) {
			r.signer = other.signer
		}, want: ErrProtection, words: "does not chain to the trusted CA"},
		{desc: "signature by a key not in extraCerts", sig: true, set: func(r *responder, c *Client) {
			r.protect = func(p []byte) ([]byte, []*x509.Certificate) {
				_, sig, _ := sign(other.signer.Key, p)
				return sig, []*x509.Certificate{r.signer.Cert}
			}
		}, want: ErrProtection, words: "no certificate it carries"},
		{desc: "certificate for another key", set: func(r *responder, c *Client) {
			r.issue = func(_ crypto.PublicKey, s pkix.Name) *x509.Certificate {
				return testpki.Must(r.gen.Issue(r.ca, testpki.Options{Subject: &s})).Cert
			}
		}, want: ErrWrongKey, words: "another public key", refused: true},
		{desc: "certificate for another subject", set: func(r *responder, c *Client) {
			r.issue = func(pub crypto.PublicKey, _ pkix.Name) *x509.Certificate {
				return testpki.Must(r.gen.Issue(r.ca, testpki.Options{CN: "mallory", Key: publicOnly{pub}})).Cert
			}
		}, want: ErrBadCertificate, words: "not the", refused: true},
		{desc: "certificate from another CA", set: func(r *responder, c *Client) {
			r.issue = func(pub crypto.PublicKey, s pkix.Name) *x509.Certificate {
				return testpki.Must(other.gen.Issue(other.ca, testpki.Options{Subject: &s, Key: publicOnly{pub}})).Cert
			}
		}, want: ErrBadCertificate, words: "does not chain", refused: true},
		{desc: "rejection with badPOP", set: func(r *responder, c *Client) {
			r.editBody = func(t int, b []byte) (int, []byte) {
				if t == bodyIP {
					return t, certRepBody(nil, nil, statusRejection, 9)
				}
				return t, b
			}
		}, want: ErrRejected, words: "proof of possession"},
		{desc: "error message", set: func(r *responder, c *Client) {
			r.editBody = func(int, []byte) (int, []byte) {
				return bodyError, errorMsgBody(statusRejection, 23, "go away")
			}
		}, want: ErrRejected, words: `not authorize this request; the CA says "go away"`},
		{desc: "unprotected error refused", set: func(r *responder, c *Client) {
			r.editBody = func(int, []byte) (int, []byte) { return bodyError, errorMsgBody(statusRejection, 1, "") }
			r.editHeader = func(h *header) { h.protectionAlg = nil }
			r.protect = func([]byte) ([]byte, []*x509.Certificate) { return nil, nil }
		}, want: ErrProtection, words: "cannot authenticate"},
		{desc: "unprotected error accepted", set: func(r *responder, c *Client) {
			c.AcceptUnprotectedErrors = true
			r.editBody = func(int, []byte) (int, []byte) { return bodyError, errorMsgBody(statusRejection, 1, "") }
			r.editHeader = func(h *header) { h.protectionAlg = nil }
			r.protect = func([]byte) ([]byte, []*x509.Certificate) { return nil, nil }
		}, want: ErrRejected, words: "unprotected answer"},
		{desc: "waiting forever, poll limit", set: func(r *responder, c *Client) {
			r.waiting, c.MaxPolls = -1, 3
		}, want: ErrTimeout, words: "after 3 polls"},
		{desc: "waiting beyond the timeout", set: func(r *responder, c *Client) {
			r.waiting, r.checkAfter, c.Timeout = -1, 3600, time.Second
		}, want: ErrTimeout, words: "beyond the timeout"},
		{desc: "slow CA", set: func(r *responder, c *Client) {
			c.Timeout = 200 * time.Millisecond
			c.URL = serve(t, func(w http.ResponseWriter, hr *http.Request) {
				io.Copy(io.Discard, hr.Body) // so the server notices the client leave
				select {
				case <-hr.Context().Done():
				case <-time.After(10 * time.Second):
				}
			})
		}, want: ErrTimeout, words: "within the timeout"},
		{desc: "unreachable CA", set: func(r *responder, c *Client) {
			c.URL = "http://" + closedPort(t) + "/pkix/"
		}, want: ErrUnreachable, words: "cannot reach the CA"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := newResponder(t)
			c := r.start(t)
			key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
			req := pbmRequest(r, key)
			if tc.sig {
				req = sigRequest(t, r, CR, key)
			}
			if tc.set != nil {
				tc.set(r, c)
			}
			_, err := c.Enroll(context.Background(), req)
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.words) || len(e.TransactionID) != 16 {
				t.Fatalf("error %q does not say %q", err, tc.words)
			}
			if strings.Contains(err.Error(), string(r.secret)) || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error quotes the secret: %v", err)
			}
			if r.refused != tc.refused {
				t.Fatalf("certConf refusal sent: %v, want %v", r.refused, tc.refused)
			}
		})
	}
}

func serve(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// cutShort serves answers that promise more bytes than they send.
func cutShort(t *testing.T, r *responder) string {
	return serve(t, func(w http.ResponseWriter, hr *http.Request) {
		w.Header().Set("Content-Type", "application/pkixcmp")
		w.Header().Set("Content-Length", "5000")
		w.Write([]byte{0x30, 0x82, 0x13, 0x84, 0x30})
	})
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestEnrollCancelled(t *testing.T) {
	r := newResponder(t)
	r.waiting, r.checkAfter = -1, 60
	c := r.start(t)
	c.Timeout = 5 * time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := c.Enroll(ctx, pbmRequest(r, testpki.Must(testpki.NewKey(testpki.ECDSAP256))))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestEnrollInvalidRequest(t *testing.T) {
	r := newResponder(t)
	c := r.start(t)
	key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	other := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	for _, tc := range []struct {
		desc string
		req  Request
	}{
		{"no key", Request{Kind: IR, Protection: PBM{Secret: []byte("x")}}},
		{"no protection", Request{Kind: IR, Key: key}},
		{"empty secret", Request{Kind: IR, Key: key, Protection: PBM{Reference: "r"}}},
		{"kur without old certificate", Request{Kind: KUR, Key: key, Protection: PBM{Secret: []byte("x")}}},
		{"signing key not the certificate's", Request{Kind: CR, Key: key,
			Protection: Signature{Cert: testpki.Must(r.gen.Issue(r.ca, testpki.Options{})).Cert, Key: other}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := c.Enroll(context.Background(), tc.req); !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestSecretNotPrinted(t *testing.T) {
	req := Request{Kind: IR, Protection: PBM{Reference: "ref", Secret: []byte("s3cret-psk")}}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, req); strings.Contains(s, "s3cret") || strings.Contains(s, fmt.Sprint([]byte("s3cret"))[1:10]) {
			t.Fatalf("%s shows the secret: %s", f, s)
		}
	}
}

// TestEnrollThroughProxy sends every message through the configured HTTP
// proxy.
func TestEnrollThroughProxy(t *testing.T) {
	r := newResponder(t)
	c := r.start(t)
	var mu sync.Mutex
	proxied := 0
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		mu.Lock()
		proxied++
		mu.Unlock()
		out := hr.Clone(hr.Context())
		out.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)
	c.Proxy, _ = url.Parse(proxy.URL)
	if _, err := c.Enroll(context.Background(), pbmRequest(r, testpki.Must(testpki.NewKey(testpki.ECDSAP256)))); err != nil {
		t.Fatal(err)
	}
	if proxied != 2 {
		t.Fatalf("%d messages went through the proxy, want 2 (ir, certConf)", proxied)
	}
}
