package crl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Digest identifies the bytes a CRL was read from.
type Digest struct {
	SHA256 [32]byte
	Size   int64
}

// Streaming limits: the reader holds one chunk (and up to two more being
// hashed), never the whole DER; an element other than revokedCertificates
// and the CertificateList and TBSCertList around it is read whole and may
// be at most maxElement octets.
const (
	chunkSize  = 256 << 10
	maxElement = 1 << 20
)

// ReadError is a failure to read the body (network, timeout, size limit),
// as opposed to a body that is not a valid CRL.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// ReadVerified reads a CRL (DER or PEM) from r and returns what
// ParseVerified returns, with the SHA-256 and size of its DER. A DER body
// is streamed: it is parsed, indexed and hashed (for the signature and for
// the digest) as it arrives, so memory holds a few chunks of it and the
// index, not the list. A PEM body is read whole (at most max octets) and
// decoded first. The CRL's RawTBS is nil unless the signature algorithm
// needs the whole signed part (Ed25519). Errors reading r are ReadErrors;
// the CRL is refused when it announces more than max octets.
func ReadVerified(r io.Reader, max int64, trusted []*x509.Certificate) (*CRL, *x509.Certificate, Digest, error) {
	return readVerified(r, max, trusted, chunkSize)
}

// readVerified is ReadVerified with chunks of the given size (tests make
// them tiny so that every element crosses chunks somewhere).
func readVerified(r io.Reader, max int64, trusted []*x509.Certificate, chunk int) (*CRL, *x509.Certificate, Digest, error) {
	s := &stream{r: r, max: max, chunk: chunk, buf: make([]byte, 0, min(chunk, 4096))}
	if err := s.fill(1); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, Digest{}, fmt.Errorf("%w: the body is empty", ErrNotCRL)
		}
		return nil, nil, Digest{}, err
	}
	if s.buf[0] != 0x30 {
		body, err := s.rest()
		if err != nil {
			return nil, nil, Digest{}, err
		}
		der, err := Decode(body)
		if err != nil {
			return nil, nil, Digest{}, err
		}
		s = &stream{r: bytes.NewReader(der), max: max, chunk: chunk, buf: make([]byte, 0, min(len(der), chunk, 4096))}
	}
	c, ca, d, err := s.parse(trusted)
	if s.h != nil {
		s.h.stop()
	}
	return c, ca, d, err
}

// stream is a DER reader over r: buf[pos:] is read but not consumed,
// buf[:pos] consumed but not yet handed to the hasher; base is the offset
// of buf[0] in the body.
type stream struct {
	r     io.Reader
	max   int64
	chunk int
	buf   []byte
	pos   int
	base  int64
	end   int64 // where the CertificateList ends; 0 until known
	eof   bool
	h     *hasher // nil until the signature algorithm is known
}

func (s *stream) off() int64 { return s.base + int64(s.pos) }

// fill makes at least n unconsumed octets available, or fails with
// io.ErrUnexpectedEOF (wrapped in no ReadError) at the end of the body.
func (s *stream) fill(n int) error {
	for len(s.buf)-s.pos < n {
		if s.eof {
			return io.ErrUnexpectedEOF
		}
		if cap(s.buf)-s.pos < n || len(s.buf) == cap(s.buf) {
			s.move(n)
		}
		k, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+k]
		if s.base+int64(len(s.buf)) > s.max {
			return &ReadError{fmt.Errorf("%w: the body is longer than %d octets", ErrTooLarge, s.max)}
		}
		switch {
		case err == io.EOF:
			s.eof = true
		case err != nil:
			return &ReadError{err}
		}
	}
	return nil
}

// move makes room for n unconsumed octets: the consumed part goes to the
// hasher and the rest to a fresh chunk. Before the hasher starts (the
// first octets of the body) the buffer grows instead.
func (s *stream) move(n int) {
	tail := s.buf[s.pos:]
	if s.h == nil {
		nb := make([]byte, len(s.buf), max(2*cap(s.buf), s.pos+n))
		copy(nb, s.buf)
		s.buf = nb
		return
	}
	size := max(s.chunk, n)
	if s.end > 0 { // no larger than the rest of the body, and one octet to see its end
		size = max(n, min(s.chunk, int(s.end-s.off())+1))
	}
	nb := s.h.chunk(size)
	nb = append(nb, tail...)
	s.h.write(s.base, s.buf[:s.pos], s.buf)
	s.base += int64(s.pos)
	s.buf, s.pos = nb, 0
}

// rest reads the remaining body whole (for PEM).
func (s *stream) rest() ([]byte, error) {
	for !s.eof {
		if err := s.fill(len(s.buf) - s.pos + 1); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
	}
	return s.buf[s.pos:], nil
}

// header reads a DER tag and definite length with the rules cryptobyte
// applies (low tag numbers, minimal length encoding), consuming them.
func (s *stream) header() (tag byte, length int64, err error) {
	if err := s.fill(2); err != nil {
		return 0, 0, err
	}
	tag, l := s.buf[s.pos], s.buf[s.pos+1]
	if tag&0x1f == 0x1f {
		return 0, 0, malformed("high tag numbers are not used in a CRL's outer structure")
	}
	if l < 0x80 {
		s.pos += 2
		return tag, int64(l), nil
	}
	n := int(l & 0x7f)
	if n == 0 || n > 4 {
		return 0, 0, malformed("an indefinite or over-long length")
	}
	if err := s.fill(2 + n); err != nil {
		return 0, 0, err
	}
	for _, b := range s.buf[s.pos+2 : s.pos+2+n] {
		length = length<<8 | int64(b)
	}
	if length < 0x80 || length>>(8*(n-1)) == 0 {
		return 0, 0, malformed("a length not in its shortest form")
	}
	s.pos += 2 + n
	return tag, length, nil
}

// element reads one whole element (header included) that must end by
// end, and returns it; it stays valid until the next read.
func (s *stream) element(end int64, what string) (cryptobyte.String, error) {
	start := s.off()
	_, length, err := s.header()
	if err != nil {
		return nil, s.wrap(err, what)
	}
	hl := int(s.off() - start) // in the buffer still: header fills before it consumes
	if length > maxElement || s.off()+length > end {
		return nil, malformed(what + " does not fit in its SEQUENCE")
	}
	s.pos -= hl
	if err := s.fill(hl + int(length)); err != nil {
		return nil, s.wrap(err, what)
	}
	e := s.buf[s.pos : s.pos+hl+int(length)]
	s.pos += len(e)
	return e, nil
}

// peek returns the next tag, or false at end.
func (s *stream) peek(end int64) (byte, bool, error) {
	if s.off() >= end {
		return 0, false, nil
	}
	if err := s.fill(1); err != nil {
		return 0, false, s.wrap(err, "the CRL")
	}
	return s.buf[s.pos], true, nil
}

func (s *stream) wrap(err error, what string) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return malformed(what + " is cut short: the body ends early")
	}
	return err
}

// parse reads the CertificateList with the checks of parseHeader and
// indexEntries, and verifies the signature when it has been read.
func (s *stream) parse(trusted []*x509.Certificate) (*CRL, *x509.Certificate, Digest, error) {
	tag, outerLen, err := s.header()
	if err != nil || tag != 0x30 {
		return nil, nil, Digest{}, s.wrap(orMalformed(err, "the outer CertificateList SEQUENCE does not parse"), "the CertificateList")
	}
	if outerLen > s.max {
		return nil, nil, Digest{}, &ReadError{fmt.Errorf("%w: the CRL announces %d octets, the limit is %d", ErrTooLarge, outerLen, s.max)}
	}
	outerEnd := s.off() + outerLen
	s.end = outerEnd
	tbsStart := s.off()
	tag, tbsLen, err := s.header()
	if err != nil || tag != 0x30 {
		return nil, nil, Digest{}, s.wrap(orMalformed(err, "tbsCertList does not parse"), "tbsCertList")
	}
	tbsEnd := s.off() + tbsLen
	if tbsEnd > outerEnd {
		return nil, nil, Digest{}, malformed("tbsCertList does not parse")
	}
	c := &CRL{}
	t, ok, err := s.peek(tbsEnd)
	if err != nil {
		return nil, nil, Digest{}, err
	}
	if ok && t == byte(cbasn1.INTEGER) {
		e, err := s.element(tbsEnd, "the CRL version")
		if err != nil {
			return nil, nil, Digest{}, err
		}
		var v int64
		if !e.ReadASN1Integer(&v) || v < 0 || v > 1 {
			return nil, nil, Digest{}, malformed("unsupported CRL version")
		}
	}
	e, err := s.element(tbsEnd, "tbsCertList signature algorithm")
	if err != nil || !bytes.Equal(e[:1], []byte{0x30}) {
		return nil, nil, Digest{}, orMalformed(err, "tbsCertList signature algorithm does not parse")
	}
	innerAlg := bytes.Clone(e)
	c.SignatureAlgorithm = signatureAlgorithm(innerAlg)
	s.h = startHasher(tbsStart, tbsEnd, c.SignatureAlgorithm, outerEnd <= inlineHashing)

	if err := s.tbsFields(c, tbsEnd); err != nil {
		return nil, nil, Digest{}, err
	}
	if s.off() != tbsEnd {
		return nil, nil, Digest{}, malformed("trailing data in tbsCertList")
	}
	outerAlg, err := s.element(outerEnd, "signatureAlgorithm")
	if err != nil {
		return nil, nil, Digest{}, orMalformed(err, "signatureAlgorithm does not parse")
	}
	if !bytes.Equal(innerAlg, outerAlg) {
		return nil, nil, Digest{}, malformed("the signature algorithm inside and outside the signed part differ")
	}
	e, err = s.element(outerEnd, "signatureValue")
	if err != nil {
		return nil, nil, Digest{}, orMalformed(err, "signatureValue does not parse")
	}
	var sig asn1.BitString
	if !e.ReadASN1BitString(&sig) || sig.BitLength%8 != 0 || !e.Empty() {
		return nil, nil, Digest{}, malformed("signatureValue does not parse")
	}
	c.Signature = bytes.Clone(sig.Bytes)
	if s.off() != outerEnd {
		return nil, nil, Digest{}, malformed("trailing data after signatureValue")
	}
	if err := s.fill(1); err == nil {
		return nil, nil, Digest{}, malformed("trailing data after the CRL")
	} else if !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, nil, Digest{}, err
	}
	s.h.write(s.base, s.buf[:s.pos], nil)
	d := Digest{Size: s.off()}
	var tbsSum []byte
	d.SHA256, tbsSum, c.RawTBS = s.h.sums()
	s.h = nil
	ca, err := c.verifyDigest(trusted, tbsSum)
	if err != nil {
		return nil, nil, Digest{}, err
	}
	return c, ca, d, nil
}

func orMalformed(err error, what string) error {
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return malformed(what)
}

// tbsFields reads issuer to crlExtensions.
func (s *stream) tbsFields(c *CRL, tbsEnd int64) error {
	e, err := s.element(tbsEnd, "issuer Name")
	if err != nil {
		return orMalformed(err, "issuer Name does not parse")
	}
	var issuer cryptobyte.String
	if !e.ReadASN1Element(&issuer, cbasn1.SEQUENCE) {
		return malformed("issuer Name does not parse")
	}
	c.RawIssuer = bytes.Clone(issuer)
	// thisUpdate, then nextUpdate when present.
	for i, what := range []string{"thisUpdate", "nextUpdate"} {
		t, ok, err := s.peek(tbsEnd)
		if err != nil {
			return err
		}
		if i == 1 && (!ok || (t != byte(cbasn1.UTCTime) && t != byte(cbasn1.GeneralizedTime))) {
			break
		}
		if !ok {
			return malformed("thisUpdate: missing time")
		}
		e, err := s.element(tbsEnd, what)
		if err != nil {
			return err
		}
		tm, err := readTime(&e)
		if err != nil {
			return malformed(what + ": " + err.Error())
		}
		if i == 0 {
			c.ThisUpdate = tm
		} else {
			c.NextUpdate = tm
		}
	}
	t, ok, err := s.peek(tbsEnd)
	if err != nil {
		return err
	}
	ix := indexer{c: c}
	if ok && t == byte(cbasn1.SEQUENCE) {
		_, length, err := s.header()
		if err != nil {
			return s.wrap(err, "revokedCertificates")
		}
		end := s.off() + length
		if end > tbsEnd {
			return malformed("revokedCertificates does not parse")
		}
		for first := true; s.off() < end; first = false {
			e, err := s.element(end, "a revoked certificate entry")
			if err != nil {
				return fmt.Errorf("entry %d: %w", c.Entries+1, err)
			}
			if first {
				ix.expect(int(length), len(e))
			}
			if err := ix.add(e); err != nil {
				return err
			}
		}
	}
	if t, ok, err = s.peek(tbsEnd); err != nil {
		return err
	}
	if ok && t == byte(tagExplicit0) {
		e, err := s.element(tbsEnd, "crlExtensions")
		if err != nil {
			return err
		}
		var wrap, exts cryptobyte.String
		if !e.ReadASN1(&wrap, tagExplicit0) || !wrap.ReadASN1(&exts, cbasn1.SEQUENCE) || !wrap.Empty() {
			return malformed("crlExtensions do not parse")
		}
		if err := c.parseExtensions(exts); err != nil {
			return err
		}
	}
	ix.finish()
	return nil
}

// hasher hashes the body on its own goroutine, chunk by chunk as the
// parser is done with them: SHA-256 of the whole DER, and the signature's
// hash of the signed part (or a copy of it for Ed25519).
type hasher struct {
	chunks   chan chunk
	free     chan []byte
	made     int
	done     chan struct{}
	der      hash.Hash
	tbs      hash.Hash
	keep     bool // Ed25519: the signed part itself is needed
	kept     []byte
	from, to int64
}

type chunk struct {
	off  int64
	data []byte
	buf  []byte // returned to free once hashed; nil for the last one
}

const (
	// buffersInFlight is how many chunks the parser may be ahead of the
	// hasher.
	buffersInFlight = 3
	// inlineHashing: a body up to this size is hashed by the parser's
	// goroutine, as handing it over would cost more than it saves.
	inlineHashing = 64 << 10
)

// startHasher starts hashing the body, on a goroutine of its own unless
// inline.
func startHasher(from, to int64, alg x509.SignatureAlgorithm, inline bool) *hasher {
	h := &hasher{
		chunks: make(chan chunk, buffersInFlight), free: make(chan []byte, buffersInFlight+1),
		done: make(chan struct{}), der: sha256.New(), from: from, to: to,
	}
	switch hf := hashOf(alg); {
	case alg == x509.PureEd25519:
		h.keep = true
	case hf != 0:
		h.tbs = hf.New()
	}
	if inline {
		h.chunks = nil
	} else {
		go h.run()
	}
	return h
}

func (h *hasher) run() {
	defer close(h.done)
	for c := range h.chunks {
		h.consume(c)
	}
}

func (h *hasher) consume(c chunk) {
	h.der.Write(c.data)
	lo, hi := max(h.from-c.off, 0), min(h.to-c.off, int64(len(c.data)))
	if lo < hi {
		switch {
		case h.tbs != nil:
			h.tbs.Write(c.data[lo:hi])
		case h.keep:
			h.kept = append(h.kept, c.data[lo:hi]...)
		}
	}
	if c.buf != nil {
		h.free <- c.buf[:0]
	}
}

// chunk returns an empty buffer of at least size octets.
func (h *hasher) chunk(size int) []byte {
	var b []byte
	switch {
	case h.chunks == nil: // inline: a buffer is free as soon as it is hashed
		select {
		case b = <-h.free:
		default:
		}
	case h.made < buffersInFlight:
		h.made++
	default:
		b = <-h.free
	}
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	return b
}

func (h *hasher) write(off int64, data, buf []byte) {
	switch c := (chunk{off: off, data: data, buf: buf}); {
	case len(data) == 0 && buf == nil:
	case h.chunks == nil:
		h.consume(c)
	default:
		h.chunks <- c
	}
}

// sums waits for the hashing to end.
func (h *hasher) sums() (der [32]byte, tbs []byte, kept []byte) {
	h.stop()
	h.der.Sum(der[:0])
	if h.tbs != nil {
		tbs = h.tbs.Sum(nil)
	}
	return der, tbs, h.kept
}

// stop ends the goroutine of a hasher abandoned on an error.
func (h *hasher) stop() {
	if h.chunks != nil {
		close(h.chunks)
		<-h.done
	}
}

func hashOf(alg x509.SignatureAlgorithm) crypto.Hash {
	switch alg {
	case x509.SHA256WithRSA, x509.ECDSAWithSHA256, x509.SHA256WithRSAPSS:
		return crypto.SHA256
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		return crypto.SHA384
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		return crypto.SHA512
	}
	return 0 // SHA-1 (refused, as crypto/x509 does), Ed25519, unknown
}

// verifyDigest is Verify given the hash of the signed part (or, for
// Ed25519, c.RawTBS): the same candidates and checks as
// x509.RevocationList.CheckSignatureFrom, which needs the signed part
// itself.
func (c *CRL) verifyDigest(trusted []*x509.Certificate, digest []byte) (*x509.Certificate, error) {
	if c.SignatureAlgorithm == x509.PureEd25519 {
		return c.Verify(trusted)
	}
	cands, err := c.candidates(trusted)
	if err != nil {
		return nil, err
	}
	hf := hashOf(c.SignatureAlgorithm)
	var errs []error
	for _, ca := range cands {
		if err := checkDigestFrom(ca, c.SignatureAlgorithm, hf, digest, c.Signature); err != nil {
			errs = append(errs, fmt.Errorf("CA %q: %w", ca.Subject.String(), err))
			continue
		}
		return ca, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrSignature, errors.Join(errs...))
}

func checkDigestFrom(ca *x509.Certificate, alg x509.SignatureAlgorithm, hf crypto.Hash, digest, sig []byte) error {
	switch {
	case ca.Version == 3 && !ca.BasicConstraintsValid || ca.BasicConstraintsValid && !ca.IsCA:
		return x509.ConstraintViolationError{}
	case ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCRLSign == 0:
		return errors.New("it may not sign CRLs (no cRLSign key usage)")
	case alg == x509.SHA1WithRSA || alg == x509.ECDSAWithSHA1:
		return x509.InsecureAlgorithmError(alg)
	case hf == 0:
		return x509.ErrUnsupportedAlgorithm
	}
	switch pub := ca.PublicKey.(type) {
	case *rsa.PublicKey:
		switch alg {
		case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA:
			return rsa.VerifyPKCS1v15(pub, hf, digest, sig)
		case x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
			return rsa.VerifyPSS(pub, hf, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
	case *ecdsa.PublicKey:
		switch alg {
		case x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
			if !ecdsa.VerifyASN1(pub, digest, sig) {
				return errors.New("x509: ECDSA verification failure")
			}
			return nil
		}
	}
	return fmt.Errorf("x509: signature algorithm specifies a different public key algorithm than the CA's key")
}
