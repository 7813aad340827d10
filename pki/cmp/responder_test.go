package cmp

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	encasn1 "encoding/asn1"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// responder is a small CMP server for tests: it answers ir, cr and kur by
// really signing the requested key and subject with its CA, polls,
// confirms, and protects its answers like the request (PBM with secret,
// else a signature by signer). Its hooks break one thing at a time.
type responder struct {
	gen    *testpki.Generator
	ca     *testpki.Cert
	signer *testpki.Cert
	secret []byte

	// waiting answers waiting to the request and this many pollReq
	// (-1: forever), with checkAfter seconds.
	waiting    int
	checkAfter int64
	// moreCAPubs are sent in caPubs after the CA.
	moreCAPubs []*x509.Certificate
	// grantImplicit grants implicit confirmation when asked.
	grantImplicit bool
	// issue, when set, makes the certificate instead of the CA signing
	// the requested key and subject.
	issue func(pub crypto.PublicKey, subject pkix.Name) *x509.Certificate
	// reply, when set, builds the whole answer from the request.
	reply func(req *message) []byte
	// editHeader and editBody change a response before it is protected.
	editHeader func(h *header)
	editBody   func(bodyType int, body []byte) (int, []byte)
	// protect, when set, replaces the protection of a response (with
	// editHeader setting its algorithm); nil protection sends it
	// unprotected.
	protect func(protected []byte) (protection []byte, extra []*x509.Certificate)

	mu       sync.Mutex
	received []int // body types, in order
	refused  bool  // a certConf with rejection came
	polls    int
	pending  int      // the body type of the answer to grant
	first    *message // the request to grant
}

func newResponder(t testing.TB) *responder {
	gen := testpki.New(time.Now())
	ca := testpki.Must(gen.Root(testpki.Options{Subject: &pkix.Name{CommonName: "Responder CA"}}))
	signer := testpki.Must(gen.Issue(ca, testpki.Options{CN: "Responder CMP", NoExtKeyUsage: true}))
	return &responder{gen: gen, ca: ca, signer: signer, secret: []byte("s3cret-psk")}
}

// start serves r on 127.0.0.1 and returns a client for it.
func (r *responder) start(t testing.TB) *Client {
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &Client{URL: srv.URL + "/pkix/", Trusted: testpki.Pool(r.ca), Timeout: 5 * time.Second,
		Recipient: pkix.Name{CommonName: "Responder CA"}}
}

func (r *responder) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	der, err := io.ReadAll(hr.Body)
	if err != nil {
		http.Error(w, "read", 400)
		return
	}
	req, err := parseMessage(der)
	if err != nil {
		http.Error(w, "bad message: "+err.Error(), 400)
		return
	}
	r.mu.Lock()
	r.received = append(r.received, req.bodyType)
	r.mu.Unlock()
	var out []byte
	if r.reply != nil {
		out = r.reply(req)
	} else {
		out = r.answer(req)
	}
	w.Header().Set("Content-Type", "application/pkixcmp")
	w.Write(out)
}

// answer builds the protected response to req.
func (r *responder) answer(req *message) []byte {
	bodyType, body := r.body(req)
	if r.editBody != nil {
		bodyType, body = r.editBody(bodyType, body)
	}
	return r.respond(req, bodyType, body)
}

func (r *responder) respond(req *message, bodyType int, body []byte) []byte {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	sender, _ := rawGeneralName(r.signer.Cert.RawSubject)
	h := header{pvno: 2, sender: sender, recipient: req.header.sender, messageTime: time.Now(),
		transactionID: req.header.transactionID, senderNonce: nonce, recipNonce: req.header.senderNonce,
		implicitConfirm: r.grantImplicit && req.header.implicitConfirm}
	pbm := false
	if oid, _, err := algorithm(req.header.protectionAlg); err == nil && oid.Equal(oidPBM) {
		pbm = true
	}
	var params *pbmParams
	if pbm {
		params = &pbmParams{salt: []byte("0123456789abcdef"), owf: crypto.SHA256, iterations: 500, mac: crypto.SHA1}
		h.protectionAlg = params.algorithmIdentifier()
		h.senderKID = req.header.senderKID
	} else {
		h.protectionAlg, _, _ = signatureAlgorithm(r.signer.Key.Public())
		h.senderKID = r.signer.Cert.SubjectKeyId
	}
	if r.editHeader != nil {
		r.editHeader(&h)
	}
	full := encodeBody(bodyType, body)
	protected, err := protectedPart(&h, full)
	if err != nil {
		panic(err)
	}
	var protection []byte
	var extra []*x509.Certificate
	switch {
	case r.protect != nil:
		protection, extra = r.protect(protected)
	case pbm:
		protection = params.compute(r.secret, protected)
	default:
		_, protection, _ = sign(r.signer.Key, protected)
		extra = []*x509.Certificate{r.signer.Cert, r.ca.Cert}
	}
	out, err := encodeMessage(protected, protection, extra)
	if err != nil {
		panic(err)
	}
	return out
}

// body is the regular answer to req.
func (r *responder) body(req *message) (int, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch req.bodyType {
	case bodyIR, bodyCR, bodyKUR:
		r.pending, r.first = req.bodyType+1, req
		if r.waiting != 0 {
			return r.pending, certRepBody(nil, nil, statusWaiting, -1)
		}
		return r.pending, r.grant(req)
	case bodyPollReq:
		r.polls++
		if r.waiting < 0 || r.polls <= r.waiting {
			return bodyPollRep, pollRepBody(r.checkAfter)
		}
		return r.pending, r.grant(r.first)
	case bodyCertConf:
		s := cryptobyte.String(req.body)
		var seq, cs cryptobyte.String
		var hash []byte
		var id int64
		if s.ReadASN1(&seq, asn1.SEQUENCE) && seq.ReadASN1(&cs, asn1.SEQUENCE) &&
			cs.ReadASN1Bytes(&hash, asn1.OCTET_STRING) && cs.ReadASN1Int64WithTag(&id, asn1.INTEGER) {
			var si statusInfo
			if !cs.Empty() && readStatusInfo(&cs, &si) && si.status == statusRejection {
				r.refused = true
			}
		}
		return bodyPKIConf, []byte{0x05, 0x00}
	}
	return bodyError, errorMsgBody(statusRejection, 2, "unexpected body")
}

// grant certifies the request's key and subject.
func (r *responder) grant(req *message) []byte {
	pub, subject := templateOf(req)
	var cert *x509.Certificate
	if r.issue != nil {
		cert = r.issue(pub, subject)
	} else {
		cert = testpki.Must(r.gen.Issue(r.ca, testpki.Options{Subject: &subject, Key: publicOnly{pub}})).Cert
	}
	return certRepBody(append([]*x509.Certificate{r.ca.Cert}, r.moreCAPubs...), cert, statusAccepted, -1)
}

// templateOf reads the public key and subject of a CertReqMessages.
func templateOf(req *message) (crypto.PublicKey, pkix.Name) {
	if req.bodyType == bodyPollReq {
		panic("poll")
	}
	s := cryptobyte.String(req.body)
	var msgs, msg, creq, tmpl cryptobyte.String
	var id int64
	if !s.ReadASN1(&msgs, asn1.SEQUENCE) || !msgs.ReadASN1(&msg, asn1.SEQUENCE) || !msg.ReadASN1(&creq, asn1.SEQUENCE) ||
		!creq.ReadASN1Int64WithTag(&id, asn1.INTEGER) || !creq.ReadASN1(&tmpl, asn1.SEQUENCE) {
		panic("template")
	}
	var name pkix.Name
	var pub crypto.PublicKey
	for !tmpl.Empty() {
		var v cryptobyte.String
		var tag asn1.Tag
		tmpl.ReadAnyASN1(&v, &tag)
		switch tag {
		case ctx(5):
			var rdn pkix.RDNSequence
			encasn1.Unmarshal(v, &rdn)
			name.FillFromRDNSequence(&rdn)
		case ctx(6):
			var b cryptobyte.Builder
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(v) })
			pub, _ = x509.ParsePKIXPublicKey(b.BytesOrPanic())
		}
	}
	return pub, name
}

// publicOnly lets testpki certify a public key whose private key it has not.
type publicOnly struct{ pub crypto.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }
func (p publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	panic("not a signing key")
}

func certRepBody(caPubs []*x509.Certificate, cert *x509.Certificate, status int64, failBit int) []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if len(caPubs) > 0 {
			b.AddASN1(ctx(1), func(b *cryptobyte.Builder) {
				b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, c := range caPubs {
						b.AddBytes(c.Raw)
					}
				})
			})
		}
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(certReqID)
				addStatus(b, status, failBit, "")
				if cert != nil {
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(ctx(0), func(b *cryptobyte.Builder) { b.AddBytes(cert.Raw) })
					})
				}
			})
		})
	})
	return b.BytesOrPanic()
}

func addStatus(b *cryptobyte.Builder, status int64, failBit int, text string) {
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(status)
		if text != "" {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(text)) })
			})
		}
		if failBit >= 0 {
			bits := make([]byte, failBit/8+1)
			bits[failBit/8] = 0x80 >> (failBit % 8)
			b.AddASN1(asn1.BIT_STRING, func(b *cryptobyte.Builder) {
				b.AddUint8(uint8(7 - failBit%8))
				b.AddBytes(bits)
			})
		}
	})
}

func pollRepBody(checkAfter int64) []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(certReqID)
			b.AddASN1Int64(checkAfter)
		})
	})
	return b.BytesOrPanic()
}

func errorMsgBody(status int64, failBit int, text string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { addStatus(b, status, failBit, text) })
	return b.BytesOrPanic()
}
