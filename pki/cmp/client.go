package cmp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/redact"
)

// Defaults and bounds of a transaction.
const (
	DefaultTimeout  = 30 * time.Second
	DefaultMaxPolls = 10
	// MaxResponseSize bounds the body of one CA response.
	MaxResponseSize = 1 << 20
	// maxChain bounds a verified chain (x509.Verify has no depth limit).
	maxChain = 8
)

// Client talks CMP over HTTP (RFC 6712) to one CA. Set its fields before
// the first Enroll and do not change them after; Enroll is safe for
// concurrent use.
type Client struct {
	// URL is the CA's CMP endpoint, such as
	// http://ca:8080/ejbca/publicweb/cmp/CMP-Server.
	URL string
	// HTTPClient, when set, is used as is (Proxy and redirects are then its
	// business); else one is built that never follows redirects.
	HTTPClient *http.Client
	// Proxy is the HTTP proxy to reach the CA through, if any.
	Proxy *url.URL
	// Timeout bounds a whole transaction, polling included; default
	// DefaultTimeout.
	Timeout time.Duration
	// Trusted holds the trusted CA: it must verify signed responses and
	// every issued certificate. Required.
	Trusted *x509.CertPool
	// Recipient is the CA's name for the header (the caller's default is the
	// trusted CA's subject); empty sends the NULL-DN.
	Recipient pkix.Name
	// AcceptUnprotectedErrors accepts an error or rejection the CA did not
	// protect (some CAs cannot protect an answer to a request they could not
	// authenticate). The enrollment fails either way; this only lets the
	// CA's reason through.
	AcceptUnprotectedErrors bool
	// MaxPolls bounds the pollReq sent while the CA answers waiting;
	// default DefaultMaxPolls.
	MaxPolls int
	// Clock times the waits between polls; default the wall clock.
	Clock clock.Clock
	// Logger gets one debug record per message exchanged; default none.
	Logger *slog.Logger

	once sync.Once
	hc   *http.Client
}

// Result is an enrolled certificate, verified.
type Result struct {
	Cert *x509.Certificate
	// Chain runs from Cert to a trusted root, as verified.
	Chain []*x509.Certificate
	// CAPubs are the CA certificates the CA sent that chain to the trusted
	// CA; others are dropped.
	CAPubs []*x509.Certificate
	// TransactionID is the transaction's ID, for logs and state.
	TransactionID []byte
	// Polls counts the pollReq sent.
	Polls int
	// ImplicitConfirm says the CA granted implicit confirmation, so no
	// certConf was sent.
	ImplicitConfirm bool
}

// Enroll runs one ir, cr or kur transaction: it sends the request, polls
// while the CA answers waiting, checks the issued certificate (public key
// equal to req.Key's, subject as asked, chain to the trusted CA), then
// confirms it with certConf and waits for pkiConf. A certificate that fails
// the checks is refused in certConf and an error returned. Errors are
// *Error values matching one of the Err kinds.
func (c *Client) Enroll(ctx context.Context, req Request) (res *Result, err error) {
	if err := c.check(&req); err != nil {
		return nil, &Error{Kind: ErrInvalidRequest, Msg: "cannot enroll", Err: err}
	}
	prot, err := newProtector(req.Protection)
	if err != nil {
		return nil, &Error{Kind: ErrInvalidRequest, Msg: "cannot enroll", Err: err}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t, err := c.newTransaction(&req, prot)
	if err != nil {
		return nil, &Error{Kind: ErrInvalidRequest, Msg: "cannot enroll", Err: err}
	}
	defer func() {
		if e, ok := err.(*Error); ok {
			e.TransactionID = t.tid
		}
	}()
	content, err := certReqMessages(&req)
	if err != nil {
		return nil, &Error{Kind: ErrInvalidRequest, Msg: "cannot build the request", Err: err}
	}
	wantBody := req.Kind.responseBody()
	m, err := t.exchange(ctx, req.Kind.requestBody(), content, wantBody)
	if err != nil {
		return nil, err
	}
	res = &Result{TransactionID: t.tid}
	maxPolls := c.MaxPolls
	if maxPolls <= 0 {
		maxPolls = DefaultMaxPolls
	}
	var rep *certRep
	var resp *certResponse
	for rep == nil {
		switch m.bodyType {
		case wantBody:
			r, cr, err := certResponseOf(m)
			if err != nil {
				return nil, err
			}
			if cr.status.status != statusWaiting {
				rep, resp = r, cr
				continue
			}
			if req.OnWaiting != nil {
				req.OnWaiting(t.tid, 0)
			}
		case bodyPollRep:
			p, err := parsePollRep(m.body)
			if err != nil {
				return nil, newError(ErrBadResponse, err, "the CA's pollRep is malformed")
			}
			if p.certReqID != certReqID || p.checkAfter < 0 {
				return nil, newError(ErrBadResponse, nil, "the CA's pollRep is for another request or has a negative checkAfter")
			}
			d := time.Duration(p.checkAfter) * time.Second
			if req.OnWaiting != nil {
				req.OnWaiting(t.tid, d)
			}
			if err := t.wait(ctx, d); err != nil {
				return nil, err
			}
		}
		if res.Polls == maxPolls {
			return nil, newError(ErrTimeout, nil, "the CA still answers waiting after %d polls", maxPolls)
		}
		res.Polls++
		if m, err = t.exchange(ctx, bodyPollReq, pollReqContent(), wantBody, bodyPollRep); err != nil {
			return nil, err
		}
	}
	switch resp.status.status {
	case statusAccepted, statusGrantedWithMods:
	case statusRejection:
		return nil, rejected(&resp.status, "the CA rejected the %s request", req.Kind)
	default:
		return nil, newError(ErrBadResponse, nil, "the CA answered with PKIStatus %s", statusName(resp.status.status))
	}
	if err := c.checkIssued(&req, m, rep, resp, res); err != nil {
		if resp.cert != nil {
			t.refuse(ctx, resp.cert)
		}
		return nil, err
	}
	if req.ImplicitConfirm && m.header.implicitConfirm {
		res.ImplicitConfirm = true
		return res, nil
	}
	conf, err := certConfContent(resp.cert, nil)
	if err != nil {
		return nil, newError(ErrInvalidRequest, err, "cannot build certConf")
	}
	m, err = t.exchange(ctx, bodyCertConf, conf, bodyPKIConf)
	if err != nil {
		return nil, err
	}
	if err := parsePKIConf(m.body); err != nil {
		return nil, newError(ErrBadResponse, err, "the CA's pkiConf is malformed")
	}
	return res, nil
}

func (c *Client) check(req *Request) error {
	switch {
	case c.URL == "":
		return errors.New("no CA URL")
	case c.Trusted == nil:
		return errors.New("no trusted CA")
	case req.Key == nil:
		return errors.New("no key to certify")
	case req.Kind < IR || req.Kind > KUR:
		return fmt.Errorf("unknown request kind %v", req.Kind)
	case req.Protection == nil:
		return errors.New("no protection")
	}
	if req.Kind == KUR && req.OldCert == nil {
		if s, ok := req.Protection.(Signature); ok {
			req.OldCert = s.Cert
		} else {
			return errors.New("kur without the certificate to renew")
		}
	}
	return nil
}

func certResponseOf(m *message) (*certRep, *certResponse, error) {
	rep, err := parseCertRep(m.body)
	if err != nil {
		return nil, nil, newError(ErrBadResponse, err, "the CA's %s is malformed", bodyName(m.bodyType))
	}
	r := &rep.responses[0]
	if r.certReqID != certReqID {
		return nil, nil, newError(ErrBadResponse, nil, "the CA answered for another request (certReqId %d)", r.certReqID)
	}
	return rep, r, nil
}

func serial(cert *x509.Certificate) string {
	return redact.Value(strings.ToUpper(hex.EncodeToString(cert.SerialNumber.Bytes())))
}

func (c *Client) clock() clock.Clock {
	if c.Clock == nil {
		return clock.Real{}
	}
	return c.Clock
}

// rejected turns a PKIStatusInfo into an ErrRejected error.
func rejected(si *statusInfo, format string, args ...any) *Error {
	e := newError(ErrRejected, nil, format, args...)
	e.FailInfo = failInfoWords(si.failInfo)
	var why []string
	for _, w := range e.FailInfo {
		if m, ok := failInfoMeaning[w]; ok {
			why = append(why, m)
		}
	}
	if len(why) > 0 {
		e.Msg += ": " + strings.Join(why, "; ")
	}
	if len(si.text) > 0 {
		e.Msg += "; the CA says " + redact.Value(strings.Join(si.text, "; "))
	}
	return e
}

// transaction is the state of one Enroll: its ID, the names and nonces of
// its headers, and how its requests are protected.
type transaction struct {
	c          *Client
	req        *Request
	prot       *protector
	tid        []byte
	sender     []byte
	recipient  []byte
	senderKID  []byte
	recipNonce []byte // the CA's last senderNonce
	sent       int
}

func (c *Client) newTransaction(req *Request, prot *protector) (*transaction, error) {
	t := &transaction{c: c, req: req, prot: prot, tid: make([]byte, 16)}
	if _, err := rand.Read(t.tid); err != nil {
		return nil, err
	}
	var err error
	if t.recipient, err = generalName(c.Recipient); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	switch p := req.Protection.(type) {
	case PBM:
		t.senderKID = []byte(p.Reference)
		t.sender, err = generalName(req.Subject)
	case Signature:
		t.senderKID = p.Cert.SubjectKeyId
		t.sender, err = rawGeneralName(p.Cert.RawSubject)
	}
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	return t, nil
}

// exchange sends one request of bodyType and returns the verified response,
// which must be of one of the want body types. An error message from the
// CA comes back as an ErrRejected error.
func (t *transaction) exchange(ctx context.Context, bodyType int, content []byte, want ...int) (*message, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, newError(ErrInvalidRequest, err, "no randomness")
	}
	h := header{pvno: 2, sender: t.sender, recipient: t.recipient, messageTime: t.c.clock().Now(),
		protectionAlg: t.prot.algDER, senderKID: t.senderKID, transactionID: t.tid,
		senderNonce: nonce, recipNonce: t.recipNonce,
		implicitConfirm: t.req.ImplicitConfirm && t.sent == 0}
	t.sent++
	protected, err := protectedPart(&h, encodeBody(bodyType, content))
	if err != nil {
		return nil, newError(ErrInvalidRequest, err, "cannot build the %s", bodyName(bodyType))
	}
	protection, extra, err := t.prot.protect(protected)
	if err != nil {
		return nil, newError(ErrInvalidRequest, err, "cannot protect the %s", bodyName(bodyType))
	}
	der, err := encodeMessage(protected, protection, extra)
	if err != nil {
		return nil, newError(ErrInvalidRequest, err, "cannot build the %s", bodyName(bodyType))
	}
	t.log(ctx, "cmp send", bodyType)
	raw, err := t.c.post(ctx, der)
	if err != nil {
		return nil, err
	}
	m, err := parseMessage(raw)
	if err != nil {
		return nil, newError(ErrBadResponse, err, "the CA's answer to our %s is not a CMP message", bodyName(bodyType))
	}
	t.log(ctx, "cmp received", m.bodyType)
	if m.header.pvno < 2 || m.header.pvno > maxPVNO {
		return nil, newError(ErrBadResponse, nil, "the CA answered with CMP version %d", m.header.pvno)
	}
	if !bytes.Equal(m.header.transactionID, t.tid) {
		return nil, newError(ErrBadResponse, nil, "the CA's answer carries another transaction ID")
	}
	if !bytes.Equal(m.header.recipNonce, nonce) {
		return nil, newError(ErrBadResponse, nil, "the CA's answer does not carry our nonce (recipNonce)")
	}
	if perr := t.verify(m); perr != nil {
		return nil, t.unverified(m, perr)
	}
	t.recipNonce = m.header.senderNonce
	if m.bodyType == bodyError {
		return nil, errorBody(m, bodyType)
	}
	for _, w := range want {
		if m.bodyType == w {
			return m, nil
		}
	}
	return nil, newError(ErrBadResponse, nil, "the CA answered our %s with %s", bodyName(bodyType), bodyName(m.bodyType))
}

func errorBody(m *message, sent int) error {
	e, err := parseErrorMsg(m.body)
	if err != nil {
		return newError(ErrBadResponse, err, "the CA answered our %s with a malformed error message", bodyName(sent))
	}
	e.status.text = append(e.status.text, e.details...)
	return rejected(&e.status, "the CA refused our %s", bodyName(sent))
}

// wait sleeps d on the client's clock, failing at once when d goes beyond
// the transaction's deadline.
func (t *transaction) wait(ctx context.Context, d time.Duration) error {
	// The deadline is the context's, on the wall clock, like a socket's.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return newError(ErrTimeout, nil, "the CA asks to wait %s more, beyond the timeout", d)
	}
	timer := t.c.clock().NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C():
		return nil
	case <-ctx.Done():
		return ctxError(ctx)
	}
}

// refuse tells the CA, in certConf, that we refuse cert; best effort, as
// the transaction has failed either way.
func (t *transaction) refuse(ctx context.Context, cert *x509.Certificate) {
	const badCertTemplate = 19
	content, err := certConfContent(cert, &rejection{failBit: badCertTemplate, reason: "certificate refused by the client"})
	if err != nil {
		return
	}
	if _, err := t.exchange(ctx, bodyCertConf, content, bodyPKIConf); err != nil {
		t.log(ctx, "cmp certConf refusal not confirmed", bodyCertConf)
	}
}

func (t *transaction) log(ctx context.Context, msg string, bodyType int) {
	if t.c.Logger == nil {
		return
	}
	t.c.Logger.DebugContext(ctx, msg, "body", bodyName(bodyType), "transaction-id", hex.EncodeToString(t.tid))
}
