package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CRL is a parsed certificate revocation list: the fields needed to verify
// and schedule it, and its revoked serials as a SerialSet. RawTBS and
// Signature alias the DER given to Parse; everything else is a copy, so
// once verified the DER can be dropped while Serials is kept.
type CRL struct {
	// RawTBS is the signed part (TBSCertList) and Signature its signature.
	RawTBS    []byte
	Signature []byte
	// SignatureAlgorithm is x509.UnknownSignatureAlgorithm for algorithms
	// crypto/x509 cannot verify.
	SignatureAlgorithm x509.SignatureAlgorithm
	// RawIssuer is the DER of the issuer Name, comparable to a CA
	// certificate's RawSubject.
	RawIssuer  []byte
	ThisUpdate time.Time
	// NextUpdate is zero when the CRL has none.
	NextUpdate time.Time
	// Number is the CRLNumber extension, nil when absent.
	Number *big.Int
	// AuthorityKeyID is the keyIdentifier of the authority key identifier
	// extension, nil when absent.
	AuthorityKeyID []byte
	// Entries counts revokedCertificates entries as listed (duplicates and
	// negative serials included).
	Entries int
	// Negative counts entries with a negative serial number (forbidden by
	// RFC 5280 and refused by crypto/x509 in certificates): they are not
	// indexed.
	Negative int
	// Serials holds the distinct non-negative revoked serial numbers.
	Serials *SerialSet
}

func oid(ids ...int) string {
	b, err := asn1.Marshal(asn1.ObjectIdentifier(ids))
	if err != nil {
		panic(err)
	}
	return string(b[2:]) // short-form header: tag, length
}

// Extension OIDs as DER content octets.
var (
	oidCRLNumber         = oid(2, 5, 29, 20)
	oidAuthorityKeyID    = oid(2, 5, 29, 35)
	oidDeltaCRLIndicator = oid(2, 5, 29, 27)
	oidIssuingDP         = oid(2, 5, 29, 28)
	oidIssuerAltName     = oid(2, 5, 29, 18)
	oidFreshestCRL       = oid(2, 5, 29, 46)
	oidAuthorityInfo     = oid(1, 3, 6, 1, 5, 5, 7, 1, 1)
	oidReasonCode        = oid(2, 5, 29, 21)
	oidInvalidityDate    = oid(2, 5, 29, 24)
	oidCertificateIssuer = oid(2, 5, 29, 29)
	tagExplicit0         = cbasn1.Tag(0).Constructed().ContextSpecific()
)

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// Parse walks the DER of a CRL (RFC 5280 CertificateList) with cryptobyte
// and returns its fields and an index of its revoked serials. It walks
// the entries once, copying their serials into arenas sized from the
// first entry, and never builds per-entry values. It refuses a delta CRL, a critical issuing distribution point,
// an indirect CRL entry (certificate issuer extension) and any other
// critical extension it does not know. Parse does not verify the
// signature: call CRL.Verify.
func Parse(der []byte) (*CRL, error) {
	c, revoked, err := parseHeader(der)
	if err != nil {
		return nil, err
	}
	if err := c.indexEntries(revoked); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseVerified is Parse followed by Verify, with the signature check (it
// hashes the whole signed part) running beside the indexing of the entries:
// a large CRL costs the longer of the two, not their sum. A CRL that does
// not parse is reported as such before a bad signature.
func ParseVerified(der []byte, trusted []*x509.Certificate) (*CRL, *x509.Certificate, error) {
	c, revoked, err := parseHeader(der)
	if err != nil {
		return nil, nil, err
	}
	var ca *x509.Certificate
	var verifyErr error
	verified := make(chan struct{})
	go func() {
		defer close(verified)
		ca, verifyErr = c.Verify(trusted)
	}()
	indexErr := c.indexEntries(revoked)
	<-verified
	switch {
	case indexErr != nil:
		return nil, nil, indexErr
	case verifyErr != nil:
		return nil, nil, verifyErr
	}
	return c, ca, nil
}

// parseHeader parses everything but the revoked certificate entries, which
// it returns unread.
func parseHeader(der []byte) (*CRL, cryptobyte.String, error) {
	input := cryptobyte.String(der)
	var certList cryptobyte.String
	if !input.ReadASN1(&certList, cbasn1.SEQUENCE) {
		return nil, nil, malformed("the outer CertificateList SEQUENCE does not parse")
	}
	if !input.Empty() {
		return nil, nil, malformed("trailing data after the CRL")
	}
	var tbsElem, outerAlg cryptobyte.String
	if !certList.ReadASN1Element(&tbsElem, cbasn1.SEQUENCE) {
		return nil, nil, malformed("tbsCertList does not parse")
	}
	if !certList.ReadASN1Element(&outerAlg, cbasn1.SEQUENCE) {
		return nil, nil, malformed("signatureAlgorithm does not parse")
	}
	var sig asn1.BitString
	if !certList.ReadASN1BitString(&sig) || sig.BitLength%8 != 0 {
		return nil, nil, malformed("signatureValue does not parse")
	}
	if !certList.Empty() {
		return nil, nil, malformed("trailing data after signatureValue")
	}
	c := &CRL{RawTBS: tbsElem, Signature: sig.Bytes}

	var tbs cryptobyte.String
	tbsCopy := tbsElem
	if !tbsCopy.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, nil, malformed("tbsCertList does not parse")
	}
	if tbs.PeekASN1Tag(cbasn1.INTEGER) {
		var v int64
		if !tbs.ReadASN1Integer(&v) || v < 0 || v > 1 {
			return nil, nil, malformed("unsupported CRL version")
		}
	}
	var innerAlg cryptobyte.String
	if !tbs.ReadASN1Element(&innerAlg, cbasn1.SEQUENCE) {
		return nil, nil, malformed("tbsCertList signature algorithm does not parse")
	}
	if !bytes.Equal(innerAlg, outerAlg) {
		return nil, nil, malformed("the signature algorithm inside and outside the signed part differ")
	}
	c.SignatureAlgorithm = signatureAlgorithm(outerAlg)
	var issuer cryptobyte.String
	if !tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) {
		return nil, nil, malformed("issuer Name does not parse")
	}
	c.RawIssuer = bytes.Clone(issuer)
	var err error
	if c.ThisUpdate, err = readTime(&tbs); err != nil {
		return nil, nil, malformed("thisUpdate: " + err.Error())
	}
	if tbs.PeekASN1Tag(cbasn1.UTCTime) || tbs.PeekASN1Tag(cbasn1.GeneralizedTime) {
		if c.NextUpdate, err = readTime(&tbs); err != nil {
			return nil, nil, malformed("nextUpdate: " + err.Error())
		}
	}
	var revoked cryptobyte.String
	if tbs.PeekASN1Tag(cbasn1.SEQUENCE) {
		if !tbs.ReadASN1(&revoked, cbasn1.SEQUENCE) {
			return nil, nil, malformed("revokedCertificates does not parse")
		}
	}
	if tbs.PeekASN1Tag(tagExplicit0) {
		var wrap, exts cryptobyte.String
		if !tbs.ReadASN1(&wrap, tagExplicit0) || !wrap.ReadASN1(&exts, cbasn1.SEQUENCE) || !wrap.Empty() {
			return nil, nil, malformed("crlExtensions do not parse")
		}
		if err := c.parseExtensions(exts); err != nil {
			return nil, nil, err
		}
	}
	if !tbs.Empty() {
		return nil, nil, malformed("trailing data in tbsCertList")
	}
	return c, revoked, nil
}

func readTime(s *cryptobyte.String) (time.Time, error) {
	var t time.Time
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		if !s.ReadASN1UTCTime(&t) {
			return t, fmt.Errorf("bad UTCTime")
		}
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		if !s.ReadASN1GeneralizedTime(&t) {
			return t, fmt.Errorf("bad GeneralizedTime")
		}
	default:
		return t, fmt.Errorf("missing time")
	}
	return t, nil
}

// readExtension reads one Extension SEQUENCE.
// The OID is returned as its DER content octets, compared without
// allocating as string(id) == oidX.
func readExtension(exts *cryptobyte.String) (id []byte, critical bool, value cryptobyte.String, ok bool) {
	var ext, o cryptobyte.String
	if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1(&o, cbasn1.OBJECT_IDENTIFIER) {
		return nil, false, nil, false
	}
	// Not ReadOptionalASN1Boolean: it expects a nested BOOLEAN.
	if ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical) {
		return nil, false, nil, false
	}
	if !ext.ReadASN1(&value, cbasn1.OCTET_STRING) ||
		!ext.Empty() {
		return nil, false, nil, false
	}
	return o, critical, value, true
}

func (c *CRL) parseExtensions(exts cryptobyte.String) error {
	for !exts.Empty() {
		oidBytes, critical, val, ok := readExtension(&exts)
		if !ok {
			return malformed("a CRL extension does not parse")
		}
		id := string(oidBytes) // once per CRL extension, not per entry
		switch id {
		case oidCRLNumber:
			n := new(big.Int)
			if !val.ReadASN1Integer(n) || !val.Empty() || n.Sign() < 0 {
				return malformed("CRLNumber does not parse")
			}
			c.Number = n
		case oidAuthorityKeyID:
			var akid, keyID cryptobyte.String
			if !val.ReadASN1(&akid, cbasn1.SEQUENCE) {
				return malformed("authority key identifier does not parse")
			}
			if akid.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()) {
				if !akid.ReadASN1(&keyID, cbasn1.Tag(0).ContextSpecific()) {
					return malformed("authority key identifier does not parse")
				}
				c.AuthorityKeyID = bytes.Clone(keyID)
			}
		case oidDeltaCRLIndicator:
			return fmt.Errorf("%w: it is a delta CRL (delta CRL indicator 2.5.29.27); only complete CRLs are used", ErrUnhandledExtension)
		case oidIssuingDP, oidIssuerAltName, oidFreshestCRL, oidAuthorityInfo:
			if critical {
				return fmt.Errorf("%w: critical %s", ErrUnhandledExtension, oidName(id))
			}
		default:
			if critical {
				return fmt.Errorf("%w: critical %s", ErrUnhandledExtension, oidName(id))
			}
		}
	}
	return nil
}

func oidName(id string) string {
	switch id {
	case oidIssuingDP:
		return "issuing distribution point (2.5.29.28)"
	case oidIssuerAltName:
		return "issuer alternative name (2.5.29.18)"
	case oidFreshestCRL:
		return "freshest CRL (2.5.29.46)"
	case oidAuthorityInfo:
		return "authority information access (1.3.6.1.5.5.7.1.1)"
	case oidCertificateIssuer:
		return "certificate issuer (2.5.29.29) in an entry: indirect CRLs are not supported"
	}
	var o asn1.ObjectIdentifier
	if len(id) < 128 {
		if _, err := asn1.Unmarshal(append([]byte{0x06, byte(len(id))}, id...), &o); err == nil {
			return "extension " + o.String()
		}
	}
	return "extension with an unreadable OID"
}

// serialKey turns the content octets of a DER INTEGER into the index key:
// the big-endian magnitude without leading zeros. neg reports a negative
// number.
func serialKey(content []byte) (key []byte, neg bool) {
	if content[0]&0x80 != 0 {
		return nil, true
	}
	for len(content) > 0 && content[0] == 0 {
		content = content[1:]
	}
	return content, false
}

// indexEntries walks revokedCertificates once, indexing the serials.
func (c *CRL) indexEntries(revoked cryptobyte.String) error {
	ix := indexer{c: c}
	for first := true; !revoked.Empty(); first = false {
		var entry cryptobyte.String
		if !revoked.ReadASN1Element(&entry, cbasn1.SEQUENCE) {
			return malformed(fmt.Sprintf("revoked certificate entry %d does not parse", c.Entries+1))
		}
		if first {
			ix.expect(len(revoked)+len(entry), len(entry))
		}
		if err := ix.add(entry); err != nil {
			return err
		}
	}
	ix.finish()
	return nil
}

// indexer validates revokedCertificates entries one at a time and copies
// their serials into one arena per width.
type indexer struct {
	c        *CRL
	lastExts []byte // a copy of the entry extensions last checked (often all alike)
	arenas   [MaxSerialLen + 1][]byte
	unsorted [MaxSerialLen + 1]bool
	zero     bool
	hinted   bool
	hint     int // expected entries
}

// expect sizes the arena of the first entry's width from the length of
// revokedCertificates and that entry's length, so a list whose entries are
// alike is copied once into an arena of about its size (an entry may be
// an octet longer than the first for a sign octet, hence the margin).
func (ix *indexer) expect(listLen, entryLen int) {
	if entryLen > 8 {
		ix.hint = listLen/(entryLen-1) + 1
	}
}

// add validates one entry (its full SEQUENCE element) and indexes its
// serial. The entry may be reused by the caller once add returns.
func (ix *indexer) add(elem cryptobyte.String) error {
	c := ix.c
	var entry, serial cryptobyte.String
	if !elem.ReadASN1(&entry, cbasn1.SEQUENCE) || !elem.Empty() || !entry.ReadASN1(&serial, cbasn1.INTEGER) || len(serial) == 0 {
		return malformed(fmt.Sprintf("revoked certificate entry %d does not parse", c.Entries+1))
	}
	c.Entries++
	var tag cbasn1.Tag
	var when cryptobyte.String
	if !entry.ReadAnyASN1(&when, &tag) || (tag != cbasn1.UTCTime && tag != cbasn1.GeneralizedTime) {
		return malformed(fmt.Sprintf("revocation date of entry %d does not parse", c.Entries))
	}
	if !entry.Empty() {
		var exts cryptobyte.String
		if !entry.ReadASN1(&exts, cbasn1.SEQUENCE) || !entry.Empty() {
			return malformed(fmt.Sprintf("extensions of entry %d do not parse", c.Entries))
		}
		if ix.lastExts != nil && bytes.Equal(exts, ix.lastExts) {
			exts = nil
		} else {
			ix.lastExts = append(ix.lastExts[:0], exts...)
		}
		for !exts.Empty() {
			id, critical, _, ok := readExtension(&exts)
			if !ok {
				ix.lastExts = nil
				return malformed(fmt.Sprintf("an extension of entry %d does not parse", c.Entries))
			}
			if string(id) == oidCertificateIssuer || (critical && string(id) != oidReasonCode && string(id) != oidInvalidityDate) {
				ix.lastExts = nil
				return fmt.Errorf("%w: critical %s", ErrUnhandledExtension, oidName(string(id)))
			}
		}
	}
	key, neg := serialKey(serial)
	if neg {
		c.Negative++
		return nil
	}
	w := len(key)
	if w == 0 {
		ix.zero = true
		return nil
	}
	if w > MaxSerialLen {
		return malformed(fmt.Sprintf("serial number of entry %d is longer than %d octets", c.Entries, MaxSerialLen))
	}
	a := ix.arenas[w]
	if a == nil && !ix.hinted && ix.hint > 0 {
		a = make([]byte, 0, ix.hint*w)
		ix.hinted = true
	}
	if !ix.unsorted[w] && len(a) > 0 && bytes.Compare(a[len(a)-w:], key) > 0 {
		ix.unsorted[w] = true
	}
	ix.arenas[w] = append(a, key...)
	return nil
}

// finish sorts the arenas and sets c.Serials.
func (ix *indexer) finish() {
	set := &SerialSet{zero: ix.zero}
	for w := 1; w <= MaxSerialLen; w++ {
		if len(ix.arenas[w]) > 0 {
			b := bucket{width: w, data: ix.arenas[w]}
			b.finish(!ix.unsorted[w])
			set.buckets = append(set.buckets, b)
		}
	}
	ix.c.Serials = set
}
