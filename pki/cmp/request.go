package cmp

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	encasn1 "encoding/asn1"
	"fmt"
	"net"
	"net/url"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Kind is the type of certificate request.
type Kind int

const (
	// IR is an initial registration: the first certificate from this CA,
	// usually protected by PBM.
	IR Kind = iota
	// CR is a certification request by a holder of a certificate from this
	// CA, protected by its signature.
	CR
	// KUR is a key update request: the renewal of OldCert, protected by a
	// signature of a certificate the CA trusts (usually OldCert's).
	KUR
)

func (k Kind) String() string {
	switch k {
	case IR:
		return "ir"
	case CR:
		return "cr"
	case KUR:
		return "kur"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// requestBody and responseBody are the body types of each kind.
func (k Kind) requestBody() int  { return [...]int{bodyIR, bodyCR, bodyKUR}[k] }
func (k Kind) responseBody() int { return [...]int{bodyIP, bodyCP, bodyKUP}[k] }

// certReqID is the one certReqId we send: one certificate per transaction.
const certReqID = 0

// certReqMessages builds the content of an ir, cr or kur body: one
// CertReqMsg (RFC 4211) for req's key and names, with proof of possession
// by the key's signature over the CertRequest.
func certReqMessages(req *Request) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(req.Key.Public())
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	spkiS := cryptobyte.String(spki)
	var spkiContent cryptobyte.String
	if !spkiS.ReadASN1(&spkiContent, asn1.SEQUENCE) {
		return nil, malformed("public key")
	}
	subject, err := encasn1.Marshal(req.Subject.ToRDNSequence())
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	var san []byte
	if len(req.DNSNames)+len(req.IPAddresses)+len(req.URIs)+len(req.EmailAddresses) > 0 {
		if san, err = subjectAltName(req); err != nil {
			return nil, err
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertRequest
		b.AddASN1Int64(certReqID)
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertTemplate
			// subject [5] Name: explicit, as Name is a CHOICE.
			b.AddASN1(ctx(5), func(b *cryptobyte.Builder) { b.AddBytes(subject) })
			// publicKey [6] SubjectPublicKeyInfo, implicit.
			b.AddASN1(ctx(6), func(b *cryptobyte.Builder) { b.AddBytes(spkiContent) })
			if san != nil {
				// extensions [9] Extensions, implicit.
				b.AddASN1(ctx(9), func(b *cryptobyte.Builder) {
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidSAN)
						if len(req.Subject.ToRDNSequence()) == 0 {
							b.AddASN1Boolean(true) // RFC 5280 4.2.1.6
						}
						b.AddASN1OctetString(san)
					})
				})
			}
		})
		if req.Kind == KUR {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // Controls
				b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidOldCertID)
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertId
						b.AddASN1(ctx(4), func(b *cryptobyte.Builder) { b.AddBytes(req.OldCert.RawIssuer) })
						b.AddASN1BigInt(req.OldCert.SerialNumber)
					})
				})
			})
		}
	})
	certReq, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	popAlg, popSig, err := sign(req.Key, certReq)
	if err != nil {
		return nil, fmt.Errorf("proof of possession: %w", err)
	}
	var m cryptobyte.Builder
	m.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertReqMessages
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertReqMsg
			b.AddBytes(certReq)
			// popo signature [1] POPOSigningKey, implicit; no poposkInput
			// as the template holds subject and public key.
			b.AddASN1(ctx(1), func(b *cryptobyte.Builder) {
				b.AddBytes(popAlg)
				b.AddASN1BitString(popSig)
			})
		})
	})
	return m.Bytes()
}

// subjectAltName encodes the GeneralNames of req's alternative names.
func subjectAltName(req *Request) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range req.EmailAddresses {
			b.AddASN1(asn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(e)) })
		}
		for _, d := range req.DNSNames {
			b.AddASN1(asn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(d)) })
		}
		for _, u := range req.URIs {
			b.AddASN1(asn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u.String())) })
		}
		for _, ip := range req.IPAddresses {
			v := ip.To4()
			if v == nil {
				v = ip.To16()
			}
			b.AddASN1(asn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(v) })
		}
	})
	return b.Bytes()
}

// certConfContent builds a CertConfirmContent for cert: accepted when
// reject is nil, else rejection with the given failInfo bit and reason.
func certConfContent(cert *x509.Certificate, reject *rejection) ([]byte, error) {
	h := certHashAlg(cert)
	d := h.New()
	d.Write(cert.Raw)
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(d.Sum(nil))
			b.AddASN1Int64(certReqID)
			if reject != nil {
				b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1Int64(statusRejection)
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(reject.reason)) })
					})
					bits := make([]byte, reject.failBit/8+1)
					bits[reject.failBit/8] = 0x80 >> (reject.failBit % 8)
					b.AddASN1(asn1.BIT_STRING, func(b *cryptobyte.Builder) {
						b.AddUint8(uint8(7 - reject.failBit%8))
						b.AddBytes(bits)
					})
				})
			}
		})
	})
	return b.Bytes()
}

// rejection is why we refuse an issued certificate in certConf.
type rejection struct {
	failBit int
	reason  string
}

// certHashAlg is the hash of certConf's certHash: that of the certificate's
// signature algorithm (RFC 4210 5.3.18), SHA-256 when it has none (Ed25519).
func certHashAlg(cert *x509.Certificate) crypto.Hash {
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		return crypto.SHA384
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		return crypto.SHA512
	}
	return crypto.SHA256
}

func pollReqContent() []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(certReqID) })
	})
	return b.BytesOrPanic()
}

// Request describes one certificate to enroll.
type Request struct {
	Kind Kind
	// Key is the key to certify; its proof of possession is its signature
	// (RSA, ECDSA P-256/384/521, Ed25519; any crypto.Signer, so TPM keys).
	Key crypto.Signer
	// Subject is the subject to ask for; the issued certificate must carry
	// it.
	Subject        pkix.Name
	DNSNames       []string
	IPAddresses    []net.IP
	URIs           []*url.URL
	EmailAddresses []string
	// Protection is PBM (ir) or Signature (cr, kur; ir too).
	Protection Protection
	// OldCert is the certificate a KUR renews (its oldCertID); it defaults
	// to the Signature protection's certificate.
	OldCert *x509.Certificate
	// ImplicitConfirm asks the CA to skip certConf/pkiConf; honoured only
	// when the CA grants it in its response.
	ImplicitConfirm bool
	// OnWaiting, when set, is called each time the CA answers waiting,
	// with the transaction ID and the wait it asks for (0 before the first
	// poll), so a caller can show the enrollment as waiting. It must not
	// block.
	OnWaiting func(transactionID []byte, checkAfter time.Duration)
}
