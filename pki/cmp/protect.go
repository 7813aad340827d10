package cmp

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Protection is how a request is protected: PBM or Signature.
type Protection interface{ isProtection() }

// PBM protects with a MAC from a secret shared with the CA (RFC 4210
// 5.1.3.1), as for an initial registration. Reference is the senderKID the
// CA knows the secret by.
type PBM struct {
	Reference string
	Secret    []byte
}

// Signature protects with the key of a certificate the CA trusts, as for
// cr and kur with the certificate in force. Key may be any crypto.Signer
// (file or TPM); Chain holds intermediates sent after Cert in extraCerts.
type Signature struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// String and GoString show the reference only, so a Request printed or
// logged by mistake never shows the secret.
func (p PBM) String() string   { return fmt.Sprintf("PBM(reference %q, secret not shown)", p.Reference) }
func (p PBM) GoString() string { return p.String() }

func (PBM) isProtection()       {}
func (Signature) isProtection() {}

var (
	oidPBM        = encasn1.ObjectIdentifier{1, 2, 840, 113533, 7, 66, 13}
	oidSHA1       = encasn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256     = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384     = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512     = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidHMACSHA1   = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 8, 1, 2}
	oidHMACSHA1b  = encasn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256 = encasn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = encasn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = encasn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	oidSHA256WithRSA   = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSAWithSHA256 = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = encasn1.ObjectIdentifier{1, 3, 101, 112}
)

// PBM parameters we send, and the bounds on what we accept from a CA.
const (
	pbmSaltLen       = 16
	pbmIterations    = 10000
	pbmMaxIterations = 100000
	pbmMinIterations = 100
	pbmMaxSalt       = 128
)

// pbmParams is a PBMParameter (RFC 4211 4.4).
type pbmParams struct {
	salt       []byte
	owf        crypto.Hash
	iterations int64
	mac        crypto.Hash
}

var owfOIDs = map[crypto.Hash]encasn1.ObjectIdentifier{crypto.SHA1: oidSHA1, crypto.SHA256: oidSHA256,
	crypto.SHA384: oidSHA384, crypto.SHA512: oidSHA512}

var macOIDs = map[crypto.Hash]encasn1.ObjectIdentifier{crypto.SHA1: oidHMACSHA1, crypto.SHA256: oidHMACSHA256,
	crypto.SHA384: oidHMACSHA384, crypto.SHA512: oidHMACSHA512}

func hashFromOID(oid encasn1.ObjectIdentifier, table map[crypto.Hash]encasn1.ObjectIdentifier) (crypto.Hash, bool) {
	for h, o := range table {
		if o.Equal(oid) {
			return h, true
		}
	}
	return 0, false
}

func newHash(h crypto.Hash) func() hash.Hash {
	switch h {
	case crypto.SHA1:
		return sha1.New
	case crypto.SHA256:
		return sha256.New
	case crypto.SHA384:
		return sha512.New384
	case crypto.SHA512:
		return sha512.New
	}
	return nil
}

func newPBMParams() (*pbmParams, error) {
	salt := make([]byte, pbmSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	return &pbmParams{salt: salt, owf: crypto.SHA256, iterations: pbmIterations, mac: crypto.SHA256}, nil
}

// algorithmIdentifier returns the DER AlgorithmIdentifier of PBM with p.
func (p *pbmParams) algorithmIdentifier() []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidPBM)
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(p.salt)
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(owfOIDs[p.owf]) })
			b.AddASN1Int64(p.iterations)
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(macOIDs[p.mac]) })
		})
	})
	return b.BytesOrPanic()
}

// mac computes the PBM value of data under secret.
func (p *pbmParams) compute(secret, data []byte) []byte {
	h := newHash(p.owf)()
	h.Write(secret)
	h.Write(p.salt)
	key := h.Sum(nil)
	for i := int64(1); i < p.iterations; i++ {
		h.Reset()
		h.Write(key)
		key = h.Sum(key[:0])
	}
	m := hmac.New(newHash(p.mac), key)
	m.Write(data)
	return m.Sum(nil)
}

// algorithm splits a DER AlgorithmIdentifier into its OID and parameters.
func algorithm(der []byte) (encasn1.ObjectIdentifier, cryptobyte.String, error) {
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	var oid encasn1.ObjectIdentifier
	if !s.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, malformed("AlgorithmIdentifier")
	}
	return oid, seq, nil
}

func readHashAlg(s *cryptobyte.String) (encasn1.ObjectIdentifier, bool) {
	var seq cryptobyte.String
	var oid encasn1.ObjectIdentifier
	if !s.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1ObjectIdentifier(&oid) {
		return nil, false
	}
	if seq.PeekASN1Tag(asn1.NULL) {
		var null cryptobyte.String
		seq.ReadASN1(&null, asn1.NULL)
	}
	return oid, seq.Empty()
}

// parsePBMParams reads the CA's PBMParameter, refusing what is outside sane
// bounds (an iteration count that would make us burn CPU, unknown hashes).
func parsePBMParams(params cryptobyte.String) (*pbmParams, error) {
	var seq cryptobyte.String
	var p pbmParams
	var salt []byte
	if !params.ReadASN1(&seq, asn1.SEQUENCE) || !params.Empty() || !seq.ReadASN1Bytes(&salt, asn1.OCTET_STRING) {
		return nil, malformed("PBM parameters")
	}
	p.salt = salt
	owf, ok1 := readHashAlg(&seq)
	ok2 := seq.ReadASN1Int64WithTag(&p.iterations, asn1.INTEGER)
	mac, ok3 := readHashAlg(&seq)
	if !ok1 || !ok2 || !ok3 || !seq.Empty() {
		return nil, malformed("PBM parameters")
	}
	var ok bool
	if p.owf, ok = hashFromOID(owf, owfOIDs); !ok {
		return nil, fmt.Errorf("PBM one-way function %v not supported", owf)
	}
	if p.mac, ok = hashFromOID(mac, macOIDs); !ok {
		if mac.Equal(oidHMACSHA1b) {
			p.mac = crypto.SHA1
		} else {
			return nil, fmt.Errorf("PBM MAC %v not supported", mac)
		}
	}
	if p.iterations < pbmMinIterations || p.iterations > pbmMaxIterations {
		return nil, fmt.Errorf("PBM iteration count %d outside %d..%d", p.iterations, pbmMinIterations, pbmMaxIterations)
	}
	if len(p.salt) == 0 || len(p.salt) > pbmMaxSalt {
		return nil, fmt.Errorf("PBM salt of %d bytes outside 1..%d", len(p.salt), pbmMaxSalt)
	}
	return &p, nil
}

// signatureAlgorithm picks the signature algorithm for key's public key
// and returns its DER AlgorithmIdentifier and the hash to sign with
// (crypto.Hash(0) for Ed25519, which signs the message itself).
func signatureAlgorithm(pub crypto.PublicKey) ([]byte, crypto.Hash, error) {
	var oid encasn1.ObjectIdentifier
	var h crypto.Hash
	null := false
	switch k := pub.(type) {
	case *rsa.PublicKey:
		oid, h, null = oidSHA256WithRSA, crypto.SHA256, true
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			oid, h = oidECDSAWithSHA256, crypto.SHA256
		case elliptic.P384():
			oid, h = oidECDSAWithSHA384, crypto.SHA384
		case elliptic.P521():
			oid, h = oidECDSAWithSHA512, crypto.SHA512
		default:
			return nil, 0, errors.New("ECDSA curve not supported")
		}
	case ed25519.PublicKey:
		oid = oidEd25519
	default:
		return nil, 0, fmt.Errorf("key type %T not supported", pub)
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if null {
			b.AddASN1NULL()
		}
	})
	return b.BytesOrPanic(), h, nil
}

// sign signs data with key as signatureAlgorithm says.
func sign(key crypto.Signer, data []byte) (alg, sig []byte, err error) {
	alg, h, err := signatureAlgorithm(key.Public())
	if err != nil {
		return nil, nil, err
	}
	digest := data
	if h != 0 {
		d := h.New()
		d.Write(data)
		digest = d.Sum(nil)
	}
	sig, err = key.Sign(rand.Reader, digest, h)
	if err != nil {
		return nil, nil, fmt.Errorf("signing with the key failed: %w", err)
	}
	return alg, sig, nil
}

// x509SignatureAlgorithm maps a signature AlgorithmIdentifier to the x509
// value, for CheckSignature. SHA-1 and RSA-PSS are not accepted.
func x509SignatureAlgorithm(oid encasn1.ObjectIdentifier) x509.SignatureAlgorithm {
	switch {
	case oid.Equal(oidSHA256WithRSA):
		return x509.SHA256WithRSA
	case oid.Equal(oidSHA384WithRSA):
		return x509.SHA384WithRSA
	case oid.Equal(oidSHA512WithRSA):
		return x509.SHA512WithRSA
	case oid.Equal(oidECDSAWithSHA256):
		return x509.ECDSAWithSHA256
	case oid.Equal(oidECDSAWithSHA384):
		return x509.ECDSAWithSHA384
	case oid.Equal(oidECDSAWithSHA512):
		return x509.ECDSAWithSHA512
	case oid.Equal(oidEd25519):
		return x509.PureEd25519
	}
	return x509.UnknownSignatureAlgorithm
}

// protector protects our requests within one transaction.
type protector struct {
	pbm    *pbmParams
	secret []byte
	sig    *Signature
	algDER []byte
}

func newProtector(p Protection) (*protector, error) {
	switch p := p.(type) {
	case PBM:
		if len(p.Secret) == 0 {
			return nil, errors.New("PBM protection without a secret")
		}
		params, err := newPBMParams()
		if err != nil {
			return nil, err
		}
		return &protector{pbm: params, secret: p.Secret, algDER: params.algorithmIdentifier()}, nil
	case Signature:
		if p.Cert == nil || p.Key == nil {
			return nil, errors.New("signature protection without a certificate and key")
		}
		if !publicKeysEqual(p.Cert.PublicKey, p.Key.Public()) {
			return nil, errors.New("the protecting key does not match its certificate")
		}
		alg, _, err := signatureAlgorithm(p.Key.Public())
		if err != nil {
			return nil, err
		}
		return &protector{sig: &p, algDER: alg}, nil
	}
	return nil, errors.New("no protection given")
}

// protect returns the protection of the DER ProtectedPart and the
// certificates to send in extraCerts.
func (p *protector) protect(protected []byte) ([]byte, []*x509.Certificate, error) {
	if p.pbm != nil {
		return p.pbm.compute(p.secret, protected), nil, nil
	}
	_, sig, err := sign(p.sig.Key, protected)
	if err != nil {
		return nil, nil, err
	}
	return sig, append([]*x509.Certificate{p.sig.Cert}, p.sig.Chain...), nil
}

// errMACMismatch marks a PBM response whose MAC does not verify with our
// secret: either the secret is wrong or someone else answered.
var errMACMismatch = errors.New("its MAC does not verify with our shared secret")

// verifyPBM checks a PBM-protected response with our secret.
func (p *protector) verifyPBM(params cryptobyte.String, m *message) error {
	if p.pbm == nil {
		return errors.New("the CA protected its response with a MAC, but our request was signed")
	}
	pp, err := parsePBMParams(params)
	if err != nil {
		return err
	}
	want := pp.compute(p.secret, m.protected)
	if subtle.ConstantTimeCompare(want, m.protection) != 1 {
		return errMACMismatch
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	da, err1 := x509.MarshalPKIXPublicKey(a)
	db, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}
