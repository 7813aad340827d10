package cmp

import (
	"crypto/x509"
	"crypto/x509/pkix"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// PKIBody choices (RFC 4210 5.1.2) this client sends or accepts.
const (
	bodyIR       = 0
	bodyIP       = 1
	bodyCR       = 2
	bodyCP       = 3
	bodyKUR      = 7
	bodyKUP      = 8
	bodyPKIConf  = 19
	bodyError    = 23
	bodyCertConf = 24
	bodyPollReq  = 25
	bodyPollRep  = 26
)

var bodyNames = map[int]string{bodyIR: "ir", bodyIP: "ip", bodyCR: "cr", bodyCP: "cp",
	bodyKUR: "kur", bodyKUP: "kup", bodyPKIConf: "pkiConf", bodyError: "error",
	bodyCertConf: "certConf", bodyPollReq: "pollReq", bodyPollRep: "pollRep"}

func bodyName(t int) string {
	if n, ok := bodyNames[t]; ok {
		return n
	}
	return fmt.Sprintf("body type %d", t)
}

// PKIStatus values (RFC 4210 5.2.3).
const (
	statusAccepted        = 0
	statusGrantedWithMods = 1
	statusRejection       = 2
	statusWaiting         = 3
)

// Bounds on what a response may hold.
const (
	maxCerts     = 32
	maxResponses = 8
	maxFreeText  = 16
	maxPVNO      = 3
)

var (
	oidImplicitConfirm = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 13}
	oidOldCertID       = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 5, 1, 5}
	oidSAN             = encasn1.ObjectIdentifier{2, 5, 29, 17}
)

func ctx(n int) asn1.Tag { return asn1.Tag(n).ContextSpecific().Constructed() }

// header is a PKIHeader (RFC 4210 5.1.1). Names are kept as the DER of the
// GeneralName.
type header struct {
	pvno            int64
	sender          []byte
	recipient       []byte
	messageTime     time.Time // sent only
	protectionAlg   []byte    // AlgorithmIdentifier DER, nil when absent
	senderKID       []byte
	recipKID        []byte
	transactionID   []byte
	senderNonce     []byte
	recipNonce      []byte
	freeText        []string
	implicitConfirm bool
}

// message is a parsed PKIMessage.
type message struct {
	header     header
	bodyType   int
	body       cryptobyte.String // the body's content, inside its tag
	protected  []byte            // DER of ProtectedPart {header, body}
	protection []byte            // nil when absent
	extraCerts []*x509.Certificate
}

var errMalformed = errors.New("malformed CMP message")

func malformed(what string) error { return fmt.Errorf("%w: %s", errMalformed, what) }

// parseMessage parses one DER PKIMessage. It keeps the received bytes of
// header and body for verifying the protection.
func parseMessage(der []byte) (*message, error) {
	input := cryptobyte.String(der)
	var msg, hdrElem, bodyElem cryptobyte.String
	if !input.ReadASN1(&msg, asn1.SEQUENCE) || !input.Empty() {
		return nil, malformed("not one DER SEQUENCE")
	}
	if !msg.ReadASN1Element(&hdrElem, asn1.SEQUENCE) {
		return nil, malformed("header")
	}
	var tag asn1.Tag
	if !msg.ReadAnyASN1Element(&bodyElem, &tag) || tag&0xe0 != 0xa0 || tag&0x1f == 0x1f {
		return nil, malformed("body")
	}
	m := &message{bodyType: int(tag & 0x1f)}
	body := bodyElem
	if !body.ReadASN1(&m.body, tag) {
		return nil, malformed("body")
	}
	if err := parseHeader(hdrElem, &m.header); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(hdrElem)
		b.AddBytes(bodyElem)
	})
	m.protected = b.BytesOrPanic()

	var prot cryptobyte.String
	var has bool
	if !msg.ReadOptionalASN1(&prot, &has, ctx(0)) {
		return nil, malformed("protection")
	}
	if has {
		var bits encasn1.BitString
		if !prot.ReadASN1BitString(&bits) || !prot.Empty() || bits.BitLength%8 != 0 {
			return nil, malformed("protection")
		}
		m.protection = bits.Bytes
		if m.protection == nil {
			m.protection = []byte{}
		}
	}
	var extra cryptobyte.String
	if !msg.ReadOptionalASN1(&extra, &has, ctx(1)) {
		return nil, malformed("extraCerts")
	}
	if has {
		var err error
		if m.extraCerts, err = parseCertSeq(extra); err != nil {
			return nil, fmt.Errorf("extraCerts: %w", err)
		}
	}
	if !msg.Empty() {
		return nil, malformed("trailing data")
	}
	return m, nil
}

// parseCertSeq parses the content of an explicitly tagged SEQUENCE OF
// Certificate.
func parseCertSeq(s cryptobyte.String) ([]*x509.Certificate, error) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, asn1.SEQUENCE) || !s.Empty() {
		return nil, malformed("certificate list")
	}
	var certs []*x509.Certificate
	for !seq.Empty() {
		var c cryptobyte.String
		if !seq.ReadASN1Element(&c, asn1.SEQUENCE) {
			return nil, malformed("certificate")
		}
		if len(certs) == maxCerts {
			return nil, malformed("too many certificates")
		}
		cert, err := x509.ParseCertificate(c)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate: %v", errMalformed, err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

func parseHeader(elem cryptobyte.String, h *header) error {
	var s cryptobyte.String
	if !elem.ReadASN1(&s, asn1.SEQUENCE) {
		return malformed("header")
	}
	var tag asn1.Tag
	var sender, recipient cryptobyte.String
	if !s.ReadASN1Int64WithTag(&h.pvno, asn1.INTEGER) ||
		!s.ReadAnyASN1Element(&sender, &tag) || tag&0x80 == 0 ||
		!s.ReadAnyASN1Element(&recipient, &tag) || tag&0x80 == 0 {
		return malformed("header pvno, sender or recipient")
	}
	h.sender, h.recipient = sender, recipient
	for n := 0; n <= 8; n++ {
		var v cryptobyte.String
		var has bool
		if !s.ReadOptionalASN1(&v, &has, ctx(n)) {
			return malformed(fmt.Sprintf("header field [%d]", n))
		}
		if !has {
			continue
		}
		ok := true
		switch n {
		case 0:
			// Kept loosely: CAs differ in fractions of seconds, and
			// nothing here depends on the CA's clock.
			var t cryptobyte.String
			ok = v.ReadASN1(&t, asn1.GeneralizedTime)
		case 1:
			var alg cryptobyte.String
			ok = v.ReadASN1Element(&alg, asn1.SEQUENCE)
			h.protectionAlg = alg
		case 2, 3, 4, 5, 6:
			var o cryptobyte.String
			ok = v.ReadASN1(&o, asn1.OCTET_STRING) && len(o) <= 128
			switch n {
			case 2:
				h.senderKID = o
			case 3:
				h.recipKID = o
			case 4:
				h.transactionID = o
			case 5:
				h.senderNonce = o
			case 6:
				h.recipNonce = o
			}
		case 7:
			h.freeText, ok = readFreeText(&v)
		case 8:
			ok = readGeneralInfo(&v, h)
		}
		if !ok || !v.Empty() {
			return malformed(fmt.Sprintf("header field [%d]", n))
		}
	}
	if !s.Empty() {
		return malformed("header trailing data")
	}
	return nil
}

func readFreeText(s *cryptobyte.String) ([]string, bool) {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, asn1.SEQUENCE) {
		return nil, false
	}
	var texts []string
	for !seq.Empty() {
		var t cryptobyte.String
		if !seq.ReadASN1(&t, asn1.UTF8String) {
			return nil, false
		}
		if len(texts) < maxFreeText {
			texts = append(texts, string(t))
		}
	}
	return texts, true
}

func readGeneralInfo(s *cryptobyte.String, h *header) bool {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, asn1.SEQUENCE) {
		return false
	}
	for !seq.Empty() {
		var itav cryptobyte.String
		var oid encasn1.ObjectIdentifier
		if !seq.ReadASN1(&itav, asn1.SEQUENCE) || !itav.ReadASN1ObjectIdentifier(&oid) {
			return false
		}
		if oid.Equal(oidImplicitConfirm) {
			h.implicitConfirm = true
		}
	}
	return true
}

// directoryName returns the Name inside a GeneralName's DER when it is a
// directoryName ([4]).
func directoryName(gn []byte) (pkix.RDNSequence, bool) {
	s := cryptobyte.String(gn)
	var inner cryptobyte.String
	if !s.ReadASN1(&inner, ctx(4)) {
		return nil, false
	}
	var rdn pkix.RDNSequence
	rest, err := encasn1.Unmarshal(inner, &rdn)
	if err != nil || len(rest) != 0 {
		return nil, false
	}
	return rdn, true
}

// generalName encodes name as a directoryName GeneralName.
func generalName(name pkix.Name) ([]byte, error) {
	der, err := encasn1.Marshal(name.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(ctx(4), func(b *cryptobyte.Builder) { b.AddBytes(der) })
	return b.Bytes()
}

// statusInfo is a PKIStatusInfo.
type statusInfo struct {
	status   int64
	text     []string
	failInfo []int
}

func readStatusInfo(s *cryptobyte.String, si *statusInfo) bool {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1Int64WithTag(&si.status, asn1.INTEGER) {
		return false
	}
	if seq.PeekASN1Tag(asn1.SEQUENCE) {
		var ok bool
		if si.text, ok = readFreeText(&seq); !ok {
			return false
		}
	}
	if seq.PeekASN1Tag(asn1.BIT_STRING) {
		var bits encasn1.BitString
		if !seq.ReadASN1BitString(&bits) || bits.BitLength > 64 {
			return false
		}
		for i := 0; i < bits.BitLength; i++ {
			if bits.At(i) == 1 {
				si.failInfo = append(si.failInfo, i)
			}
		}
	}
	return seq.Empty()
}

// certResponse is one CertResponse of a CertRepMessage.
type certResponse struct {
	certReqID int64
	status    statusInfo
	cert      *x509.Certificate // nil unless a plain certificate was returned
	encrypted bool              // the certificate came encrypted
}

// certRep is a CertRepMessage (ip, cp, kup).
type certRep struct {
	caPubs    []*x509.Certificate
	responses []certResponse
}

func parseCertRep(body cryptobyte.String) (*certRep, error) {
	var seq cryptobyte.String
	if !body.ReadASN1(&seq, asn1.SEQUENCE) || !body.Empty() {
		return nil, malformed("CertRepMessage")
	}
	rep := &certRep{}
	var caPubs cryptobyte.String
	var has bool
	if !seq.ReadOptionalASN1(&caPubs, &has, ctx(1)) {
		return nil, malformed("caPubs")
	}
	if has {
		var err error
		// caPubs is a SEQUENCE OF inside an explicit [1].
		if rep.caPubs, err = parseCertSeq(caPubs); err != nil {
			return nil, fmt.Errorf("caPubs: %w", err)
		}
	}
	var resps cryptobyte.String
	if !seq.ReadASN1(&resps, asn1.SEQUENCE) || !seq.Empty() {
		return nil, malformed("CertRepMessage response")
	}
	for !resps.Empty() {
		if len(rep.responses) == maxResponses {
			return nil, malformed("too many responses")
		}
		var r cryptobyte.String
		var cr certResponse
		if !resps.ReadASN1(&r, asn1.SEQUENCE) || !r.ReadASN1Int64WithTag(&cr.certReqID, asn1.INTEGER) ||
			!readStatusInfo(&r, &cr.status) {
			return nil, malformed("CertResponse")
		}
		if r.PeekASN1Tag(asn1.SEQUENCE) {
			var ckp, coe cryptobyte.String
			var tag asn1.Tag
			if !r.ReadASN1(&ckp, asn1.SEQUENCE) || !ckp.ReadAnyASN1(&coe, &tag) {
				return nil, malformed("certifiedKeyPair")
			}
			switch tag {
			case ctx(0):
				var c cryptobyte.String
				if !coe.ReadASN1Element(&c, asn1.SEQUENCE) || !coe.Empty() {
					return nil, malformed("certificate")
				}
				cert, err := x509.ParseCertificate(c)
				if err != nil {
					return nil, fmt.Errorf("%w: issued certificate: %v", errMalformed, err)
				}
				cr.cert = cert
			case ctx(1):
				cr.encrypted = true
			default:
				return nil, malformed("certOrEncCert")
			}
			// privateKey [0] and publicationInfo [1] are ignored: we never
			// ask the CA for a key.
		}
		if r.PeekASN1Tag(asn1.OCTET_STRING) {
			var info cryptobyte.String
			r.ReadASN1(&info, asn1.OCTET_STRING)
		}
		if !r.Empty() {
			return nil, malformed("CertResponse trailing data")
		}
		rep.responses = append(rep.responses, cr)
	}
	if len(rep.responses) == 0 {
		return nil, malformed("CertRepMessage without a response")
	}
	return rep, nil
}

// pollRep is one entry of PollRepContent.
type pollRep struct {
	certReqID  int64
	checkAfter int64
	reason     []string
}

func parsePollRep(body cryptobyte.String) (*pollRep, error) {
	var seq, e cryptobyte.String
	var p pollRep
	if !body.ReadASN1(&seq, asn1.SEQUENCE) || !body.Empty() || !seq.ReadASN1(&e, asn1.SEQUENCE) ||
		!e.ReadASN1Int64WithTag(&p.certReqID, asn1.INTEGER) || !e.ReadASN1Int64WithTag(&p.checkAfter, asn1.INTEGER) {
		return nil, malformed("pollRep")
	}
	if e.PeekASN1Tag(asn1.SEQUENCE) {
		var ok bool
		if p.reason, ok = readFreeText(&e); !ok {
			return nil, malformed("pollRep reason")
		}
	}
	if !e.Empty() {
		return nil, malformed("pollRep")
	}
	// More entries are for other requests: we sent one.
	return &p, nil
}

// errorMsg is an ErrorMsgContent.
type errorMsg struct {
	status  statusInfo
	code    int64
	details []string
}

func parseErrorMsg(body cryptobyte.String) (*errorMsg, error) {
	var seq cryptobyte.String
	var e errorMsg
	if !body.ReadASN1(&seq, asn1.SEQUENCE) || !body.Empty() || !readStatusInfo(&seq, &e.status) {
		return nil, malformed("error message")
	}
	if seq.PeekASN1Tag(asn1.INTEGER) && !seq.ReadASN1Int64WithTag(&e.code, asn1.INTEGER) {
		return nil, malformed("error code")
	}
	if seq.PeekASN1Tag(asn1.SEQUENCE) {
		var ok bool
		if e.details, ok = readFreeText(&seq); !ok {
			return nil, malformed("error details")
		}
	}
	if !seq.Empty() {
		return nil, malformed("error message trailing data")
	}
	return &e, nil
}

func parsePKIConf(body cryptobyte.String) error {
	var null cryptobyte.String
	if !body.ReadASN1(&null, asn1.NULL) || !body.Empty() || !null.Empty() {
		return malformed("pkiConf")
	}
	return nil
}

// encodeHeader writes h as a PKIHeader.
func encodeHeader(b *cryptobyte.Builder, h *header) {
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(h.pvno)
		b.AddBytes(h.sender)
		b.AddBytes(h.recipient)
		if !h.messageTime.IsZero() {
			b.AddASN1(ctx(0), func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(h.messageTime.UTC().Truncate(time.Second))
			})
		}
		if h.protectionAlg != nil {
			b.AddASN1(ctx(1), func(b *cryptobyte.Builder) { b.AddBytes(h.protectionAlg) })
		}
		octets := []struct {
			n int
			v []byte
		}{{2, h.senderKID}, {3, h.recipKID}, {4, h.transactionID}, {5, h.senderNonce}, {6, h.recipNonce}}
		for _, o := range octets {
			if o.v != nil {
				b.AddASN1(ctx(o.n), func(b *cryptobyte.Builder) { b.AddASN1OctetString(o.v) })
			}
		}
		if h.implicitConfirm {
			b.AddASN1(ctx(8), func(b *cryptobyte.Builder) {
				b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidImplicitConfirm)
						b.AddASN1NULL()
					})
				})
			})
		}
	})
}

// encodeBody wraps content (the body's DER) in the tag of its type.
func encodeBody(bodyType int, content []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(ctx(bodyType), func(b *cryptobyte.Builder) { b.AddBytes(content) })
	return b.BytesOrPanic()
}

// protectedPart returns the DER of ProtectedPart {header, body}.
func protectedPart(h *header, body []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		encodeHeader(b, h)
		b.AddBytes(body)
	})
	return b.Bytes()
}

// encodeMessage writes a whole PKIMessage from its ProtectedPart DER.
func encodeMessage(protected, protection []byte, extraCerts []*x509.Certificate) ([]byte, error) {
	inner := cryptobyte.String(protected)
	var content cryptobyte.String
	if !inner.ReadASN1(&content, asn1.SEQUENCE) {
		return nil, malformed("protected part")
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(content)
		if protection != nil {
			b.AddASN1(ctx(0), func(b *cryptobyte.Builder) {
				b.AddASN1BitString(protection)
			})
		}
		if len(extraCerts) > 0 {
			b.AddASN1(ctx(1), func(b *cryptobyte.Builder) {
				b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, c := range extraCerts {
						b.AddBytes(c.Raw)
					}
				})
			})
		}
	})
	return b.Bytes()
}

// rawGeneralName wraps a DER Name as a directoryName GeneralName.
func rawGeneralName(name []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(ctx(4), func(b *cryptobyte.Builder) { b.AddBytes(name) })
	return b.Bytes()
}
