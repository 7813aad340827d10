package crl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// Fetch defaults.
const (
	// DefaultMaxSize is the largest CRL body accepted: 64 MiB.
	DefaultMaxSize = 64 << 20
	// DefaultConnectTimeout bounds the TCP connect and TLS handshake.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultTimeout bounds a whole fetch, body included, so a server
	// that trickles bytes cannot hold a fetch open.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxRedirects is how many redirects a fetch follows.
	DefaultMaxRedirects = 5
)

// FetchOptions tune a Fetcher; zero fields take the defaults above.
type FetchOptions struct {
	MaxSize        int64
	ConnectTimeout time.Duration
	Timeout        time.Duration
	MaxRedirects   int
	// TLS is used for https URLs (nil: system roots).
	TLS *tls.Config
	// UserAgent is sent with HTTP requests.
	UserAgent string
}

func (o FetchOptions) withDefaults() FetchOptions {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxRedirects <= 0 {
		o.MaxRedirects = DefaultMaxRedirects
	}
	if o.UserAgent == "" {
		o.UserAgent = "pki-agent-crl/1"
	}
	return o
}

// Fetcher downloads CRLs from http, https and file URLs. It is safe for
// concurrent use.
type Fetcher struct{ opts FetchOptions }

// NewFetcher returns a fetcher with opts (zero fields: defaults).
func NewFetcher(opts FetchOptions) *Fetcher { return &Fetcher{opts: opts.withDefaults()} }

// Request is one fetch.
type Request struct {
	URL string
	// Proxy is an http:// proxy URL, "" for a direct connection. The
	// environment's proxy settings are never used.
	Proxy string
	// Validators from the previous response, for a conditional GET;
	// ignored when empty.
	ETag         string
	LastModified string
}

// Response is a fetched body or a "not modified" answer.
type Response struct {
	// Body is the raw body (DER or PEM) read by Fetch; nil when
	// NotModified and from Open.
	Body []byte
	// Stream is the body still to read, from Open (nil when NotModified):
	// it refuses to read past the size limit, with ErrTooLarge, and the
	// caller must close it.
	Stream      io.ReadCloser
	NotModified bool
	// Validators to send next time.
	ETag         string
	LastModified string
	size         int64 // announced body size, -1 when unknown
}

// Fetch downloads req.URL within the options' limits. Errors wrap ErrFetch
// or ErrTooLarge.
func (f *Fetcher) Fetch(ctx context.Context, req Request) (*Response, error) {
	resp, err := f.Open(ctx, req)
	if err != nil || resp.NotModified {
		return resp, err
	}
	defer resp.Stream.Close()
	body, err := readLimited(resp.Stream, resp.size, f.opts.MaxSize)
	if err != nil {
		return nil, err
	}
	resp.Body, resp.Stream = body, nil
	return resp, nil
}

// Open starts downloading req.URL: the body is left to read from
// Response.Stream, whose read errors (a timeout, the size limit) are worded
// like Fetch's. Errors wrap ErrFetch or ErrTooLarge.
func (f *Fetcher) Open(ctx context.Context, req Request) (*Response, error) {
	u, err := url.Parse(req.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: URL %q does not parse: %w", ErrFetch, req.URL, err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	var resp *Response
	switch u.Scheme {
	case "http", "https":
		resp, err = f.fetchHTTP(ctx, u, req)
	case "file":
		resp, err = f.fetchFile(u, req)
	default:
		err = fmt.Errorf("%w: URL scheme %q is not http, https or file", ErrFetch, u.Scheme)
	}
	if err != nil || resp.Stream == nil {
		cancel()
		return resp, err
	}
	resp.Stream = &body{ReadCloser: resp.Stream, cancel: cancel}
	return resp, nil
}

// body ends the fetch's context when closed.
type body struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *body) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// limitedBody reads a body up to max octets, wording its errors.
type limitedBody struct {
	r     io.ReadCloser
	n     int64 // read so far
	max   int64
	what  string // the URL or file, redacted
	ctx   context.Context
	limit time.Duration
	onEnd func()
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > l.max+1-l.n {
		p = p[:l.max+1-l.n]
	}
	k, err := l.r.Read(p)
	l.n += int64(k)
	if l.n > l.max {
		return k, fmt.Errorf("%w: %s sent more than %d bytes", ErrTooLarge, l.what, l.max)
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w from %s: reading the body: %w", ErrFetch, l.what, timeoutWords(l.ctx, err, l.limit))
	}
	return k, err
}

func (l *limitedBody) Close() error {
	err := l.r.Close()
	if l.onEnd != nil {
		l.onEnd()
	}
	return err
}

func (f *Fetcher) fetchHTTP(ctx context.Context, u *url.URL, req Request) (*Response, error) {
	dialer := &net.Dialer{Timeout: f.opts.ConnectTimeout}
	tr := &http.Transport{
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    f.opts.ConnectTimeout,
		ResponseHeaderTimeout:  f.opts.Timeout,
		TLSClientConfig:        f.opts.TLS,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if req.Proxy != "" {
		p, err := url.Parse(req.Proxy)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("%w: HTTP proxy %q is not an http:// URL", ErrFetch, req.Proxy)
		}
		tr.Proxy = http.ProxyURL(p)
	}
	max := f.opts.MaxRedirects
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) > max {
				return fmt.Errorf("stopped after %d redirects (last to %s)", max, r.URL.Redacted())
			}
			return nil
		},
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	hr.Header.Set("User-Agent", f.opts.UserAgent)
	hr.Header.Set("Accept", "application/pkix-crl, application/x-pkcs7-crl, */*")
	if req.ETag != "" {
		hr.Header.Set("If-None-Match", req.ETag)
	}
	if req.LastModified != "" {
		hr.Header.Set("If-Modified-Since", req.LastModified)
	}
	resp, err := client.Do(hr)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("%w from %s: %w", ErrFetch, u.Redacted(), timeoutWords(ctx, err, f.opts.Timeout))
	}
	streaming := false
	defer func() {
		if !streaming {
			resp.Body.Close()
			tr.CloseIdleConnections()
		}
	}()
	out := &Response{ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		out.NotModified = true
		if out.ETag == "" {
			out.ETag = req.ETag
		}
		if out.LastModified == "" {
			out.LastModified = req.LastModified
		}
		return out, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w from %s: HTTP status %s", ErrFetch, u.Redacted(), resp.Status)
	}
	if resp.ContentLength > f.opts.MaxSize {
		return nil, fmt.Errorf("%w: %s announces %d bytes, the limit is %d", ErrTooLarge, u.Redacted(), resp.ContentLength, f.opts.MaxSize)
	}
	streaming = true
	out.size = resp.ContentLength
	out.Stream = &limitedBody{r: resp.Body, max: f.opts.MaxSize, what: u.Redacted(), ctx: ctx, limit: f.opts.Timeout, onEnd: tr.CloseIdleConnections}
	return out, nil
}

// timeoutWords says "timed out after 60s" instead of a bare deadline error.
func timeoutWords(ctx context.Context, err error, d time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %v: %w", d, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("timed out: %w", err)
	}
	return err
}

// readLimited reads r to the end, refusing more than max bytes. size is the
// announced length (-1 when unknown), used to allocate once. Errors from r
// are returned as they are.
func readLimited(r io.Reader, size, max int64) ([]byte, error) {
	initial := int64(64 << 10)
	if size >= 0 {
		initial = size + 1 // +1 to see EOF without growing
	}
	if initial > max+1 {
		initial = max + 1
	}
	buf := make([]byte, 0, initial)
	lr := io.LimitReader(r, max+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil && err != io.EOF {
			return nil, err
		}
		if int64(len(buf)) > max {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
		}
		if err == io.EOF {
			return buf, nil
		}
	}
}

// fetchFile reads a file: URL. The file's size and modification time act
// as the validator, so an unchanged file is NotModified.
func (f *Fetcher) fetchFile(u *url.URL, req Request) (*Response, error) {
	path := u.Path
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("%w: file URL %q names a remote host", ErrFetch, u.Redacted())
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	streaming := false
	defer func() {
		if !streaming {
			fh.Close()
		}
	}()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrFetch, path)
	}
	if st.Size() > f.opts.MaxSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrTooLarge, path, st.Size(), f.opts.MaxSize)
	}
	stamp := strconv.FormatInt(st.Size(), 10) + "-" + strconv.FormatInt(st.ModTime().UnixNano(), 10)
	if req.ETag != "" && req.ETag == stamp {
		return &Response{NotModified: true, ETag: stamp}, nil
	}
	streaming = true
	return &Response{ETag: stamp, size: st.Size(), Stream: &fileBody{fh, path, 0, f.opts.MaxSize}}, nil
}

// fileBody reads a file: URL's file up to the size limit.
type fileBody struct {
	*os.File
	path string
	n    int64
	max  int64
}

func (b *fileBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.max+1-b.n {
		p = p[:b.max+1-b.n]
	}
	k, err := b.File.Read(p)
	b.n += int64(k)
	if b.n > b.max {
		return k, fmt.Errorf("%w: %s grew past %d bytes", ErrTooLarge, b.path, b.max)
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: reading %s: %w", ErrFetch, b.path, err)
	}
	return k, err
}
