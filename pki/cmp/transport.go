package cmp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/pkiagent/pkiagent/internal/redact"
)

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	c.once.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		if c.Proxy != nil {
			tr.Proxy = http.ProxyURL(c.Proxy)
		}
		c.hc = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	})
	return c.hc
}

func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return newError(ErrTimeout, ctx.Err(), "the CA did not finish the transaction within the timeout")
	}
	return newError(ErrUnreachable, ctx.Err(), "the enrollment was cancelled")
}

// post sends one DER message and returns the CA's DER answer.
func (c *Client) post(ctx context.Context, der []byte) ([]byte, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(der))
	if err != nil {
		return nil, newError(ErrInvalidRequest, nil, "the CA URL is not usable")
	}
	hr.Header.Set("Content-Type", "application/pkixcmp")
	// One connection per message: CMP servers (openssl's among them) close
	// a connection after answering without saying so, and a POST cannot be
	// retried safely on a reused connection that turns out closed.
	hr.Close = true
	resp, err := c.httpClient().Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL
		}
		return nil, newError(ErrUnreachable, err, "cannot reach the CA at %s", hr.URL.Host)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx)
		}
		return nil, newError(ErrBadResponse, err, "the CA's answer was cut short")
	}
	if len(body) > MaxResponseSize {
		return nil, newError(ErrBadResponse, nil, "the CA's answer is larger than %d bytes", MaxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, newError(ErrBadResponse, nil, "the CA answered HTTP %d", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/pkixcmp" {
		return nil, newError(ErrBadResponse, nil, "the CA answered with content type %s, not application/pkixcmp",
			redact.Value(resp.Header.Get("Content-Type")))
	}
	return body, nil
}
