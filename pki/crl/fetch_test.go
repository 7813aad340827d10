package crl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// newServer starts an httptest server on 127.0.0.1 (httptest's default).
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// forwardProxy is a plain-HTTP forward proxy that counts the requests it
// relays and records the absolute URLs it was asked for.
type forwardProxy struct {
	srv  *httptest.Server
	hits atomic.Int32
	last atomic.Value // string
}

func newForwardProxy(t *testing.T) *forwardProxy {
	p := &forwardProxy{}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p.srv = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		p.hits.Add(1)
		p.last.Store(r.URL.String())
		out, _ := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
		out.Header = r.Header.Clone()
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	return p
}

func TestFetch(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "fetch CA")
	der := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1, 2, 3), Number: 1})
	const etag = `"v1"`
	crlSrv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/crl.der":
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", etag)
			w.Header().Set("Last-Modified", "Sun, 01 Mar 2026 11:00:00 GMT")
			w.Write(der)
		case "/crl.pem":
			w.Write(testpki.CRLPEM(der))
		case "/big":
			w.Header().Set("Content-Length", "100000000")
			w.Write(make([]byte, 4096))
		case "/big-chunked":
			w.(http.Flusher).Flush() // no Content-Length
			chunk := make([]byte, 64<<10)
			for i := 0; i < 100; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/hang":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case "/trickle":
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			for i := 0; i < 100000; i++ {
				if _, err := w.Write([]byte{0x30}); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		case "/loop":
			http.Redirect(w, r, "/loop2", http.StatusFound)
		case "/loop2":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/moved":
			http.Redirect(w, r, "/crl.der", http.StatusMovedPermanently)
		default:
			http.NotFound(w, r)
		}
	})
	f := NewFetcher(FetchOptions{Timeout: 400 * time.Millisecond, ConnectTimeout: time.Second, MaxSize: 1 << 20})
	ctx := context.Background()

	t.Run("success DER with validators", func(t *testing.T) {
		resp, err := f.Fetch(ctx, Request{URL: crlSrv.URL + "/crl.der"})
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Body) != string(der) || resp.ETag != etag || resp.LastModified == "" {
			t.Fatalf("got %d bytes, etag %q, last-modified %q", len(resp.Body), resp.ETag, resp.LastModified)
		}
		again, err := f.Fetch(ctx, Request{URL: crlSrv.URL + "/crl.der", ETag: resp.ETag, LastModified: resp.LastModified})
		if err != nil || !again.NotModified || again.Body != nil || again.ETag != etag {
			t.Fatalf("conditional GET: %+v, %v", again, err)
		}
	})
	t.Run("PEM body decodes", func(t *testing.T) {
		resp, err := f.Fetch(ctx, Request{URL: crlSrv.URL + "/crl.pem"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(resp.Body)
		if err != nil || string(got) != string(der) {
			t.Fatalf("Decode: %v", err)
		}
	})
	t.Run("one redirect is followed", func(t *testing.T) {
		if _, err := f.Fetch(ctx, Request{URL: crlSrv.URL + "/moved"}); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		desc, path string
		want       error
		words      string
		slow       bool
	}{
		{desc: "404", path: "/missing", want: ErrFetch, words: "HTTP status 404"},
		{desc: "announced oversize", path: "/big", want: ErrTooLarge, words: "announces 100000000 bytes"},
		{desc: "chunked oversize", path: "/big-chunked", want: ErrTooLarge, words: "sent more than"},
		{desc: "server never answers", path: "/hang", want: ErrFetch, words: "timed out", slow: true},
		{desc: "server trickles bytes", path: "/trickle", want: ErrFetch, words: "timed out", slow: true},
		{desc: "redirect loop", path: "/loop", want: ErrFetch, words: "stopped after 5 redirects"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			start := time.Now()
			_, err := f.Fetch(ctx, Request{URL: crlSrv.URL + tc.path})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("Fetch: %v, want %v with %q", err, tc.want, tc.words)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Fatalf("took %v", el)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		s := httptest.NewServer(http.NotFoundHandler())
		u := s.URL
		s.Close()
		if _, err := f.Fetch(ctx, Request{URL: u + "/crl"}); !errors.Is(err, ErrFetch) {
			t.Fatalf("Fetch: %v", err)
		}
	})
	t.Run("through the proxy", func(t *testing.T) {
		p := newForwardProxy(t)
		resp, err := f.Fetch(ctx, Request{URL: crlSrv.URL + "/crl.der", Proxy: p.srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Body) != string(der) {
			t.Fatal("wrong body through the proxy")
		}
		if p.hits.Load() != 1 || p.last.Load() != crlSrv.URL+"/crl.der" {
			t.Fatalf("proxy saw %d requests, last %v", p.hits.Load(), p.last.Load())
		}
	})
	t.Run("bad proxy URL", func(t *testing.T) {
		if _, err := f.Fetch(ctx, Request{URL: crlSrv.URL + "/crl.der", Proxy: "socks5://x"}); !errors.Is(err, ErrFetch) {
			t.Fatalf("Fetch: %v", err)
		}
	})
	t.Run("unsupported scheme", func(t *testing.T) {
		if _, err := f.Fetch(ctx, Request{URL: "ldap://x/cn=crl"}); !errors.Is(err, ErrFetch) {
			t.Fatalf("Fetch: %v", err)
		}
	})
}

func TestFetchHTTPS(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "https CA")
	der := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1), Number: 1})
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(der) }))
	t.Cleanup(s.Close)
	f := NewFetcher(FetchOptions{TLS: s.Client().Transport.(*http.Transport).TLSClientConfig})
	resp, err := f.Fetch(context.Background(), Request{URL: s.URL + "/crl"})
	if err != nil || string(resp.Body) != string(der) {
		t.Fatalf("Fetch: %v", err)
	}
	// Without the test CA the server certificate is refused.
	if _, err := NewFetcher(FetchOptions{}).Fetch(context.Background(), Request{URL: s.URL + "/crl"}); !errors.Is(err, ErrFetch) {
		t.Fatalf("untrusted server: %v", err)
	}
}

func TestFetchFile(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "file CA")
	der := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1), Number: 1})
	dir := t.TempDir()
	p := filepath.Join(dir, "ca.crl")
	if err := os.WriteFile(p, der, 0o600); err != nil {
		t.Fatal(err)
	}
	f := NewFetcher(FetchOptions{MaxSize: 1 << 10})
	u := (&url.URL{Scheme: "file", Path: p}).String()
	resp, err := f.Fetch(context.Background(), Request{URL: u})
	if err != nil || string(resp.Body) != string(der) {
		t.Fatalf("Fetch: %v", err)
	}
	again, err := f.Fetch(context.Background(), Request{URL: u, ETag: resp.ETag})
	if err != nil || !again.NotModified {
		t.Fatalf("unchanged file: %+v %v", again, err)
	}
	if err := os.WriteFile(p, make([]byte, 2<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), Request{URL: u}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize file: %v", err)
	}
	if _, err := f.Fetch(context.Background(), Request{URL: "file://" + filepath.Join(dir, "none")}); !errors.Is(err, ErrFetch) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := f.Fetch(context.Background(), Request{URL: fmt.Sprintf("file://%s", dir)}); !errors.Is(err, ErrFetch) {
		t.Fatalf("directory: %v", err)
	}
}
