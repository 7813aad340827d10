package pemx

import (
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	beginPrefix = "-----BEGIN "
	endPrefix   = "-----END "
	dashes      = "-----"
	maxLabelLen = 64
)

// scan parses data line by line. It returns the blocks it could decode and
// the first structural error. It keeps going after an error so that
// CheckNoPrivateKey can inspect every block; the work stays linear in
// len(data), which checkSize bounds.
func scan(data []byte, lim Limits) ([]Block, error) {
	if err := checkSize(data, lim); err != nil {
		return nil, err
	}
	var (
		blocks   []Block
		firstErr error
		cur      *Block
		body     []byte
		inHeader bool
		bodyLine int // first body line, for base64 errors
		nBlocks  int
	)
	fail := func(e *Error) {
		if firstErr == nil {
			firstErr = e
		}
	}
	// start opens a block at a BEGIN line; false means stop scanning.
	start := func(line []byte, lineNo int) bool {
		nBlocks++
		if lim.MaxBlocks > 0 && nBlocks > lim.MaxBlocks {
			fail(&Error{Err: ErrTooManyBlocks, Block: nBlocks, Line: lineNo, Detail: fmt.Sprintf("the limit is %d blocks per value", lim.MaxBlocks)})
			return false
		}
		label, ok := armorLabel(line, beginPrefix)
		if !ok {
			fail(&Error{Err: ErrMalformed, Block: nBlocks, Line: lineNo, Detail: "BEGIN line must look like -----BEGIN LABEL-----"})
		}
		cur = &Block{Type: label, Line: lineNo}
		body = body[:0]
		inHeader = true
		bodyLine = 0
		return true
	}
	lineNo := 0
	for rest := data; len(rest) > 0; {
		lineNo++
		raw := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			raw, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line := bytes.TrimSpace(raw)

		if cur == nil {
			switch {
			case len(line) == 0:
			case bytes.HasPrefix(line, []byte(beginPrefix)):
				if !start(line, lineNo) {
					return blocks, firstErr
				}
			case bytes.HasPrefix(line, []byte(endPrefix)):
				fail(&Error{Err: ErrMalformed, Line: lineNo, Detail: "END line without a BEGIN line"})
			default:
				if e := junkError(line, lineNo, len(blocks)); e != nil {
					fail(e)
				}
			}
			continue
		}

		// Inside a block.
		if bytes.HasPrefix(line, []byte(endPrefix)) {
			label, ok := armorLabel(line, endPrefix)
			switch {
			case !ok:
				fail(&Error{Err: ErrMalformed, Block: nBlocks, Line: lineNo, Detail: "END line must look like -----END LABEL-----"})
			case label != cur.Type:
				fail(&Error{Err: ErrMalformed, Block: nBlocks, Line: lineNo, Detail: fmt.Sprintf("END label %q does not match BEGIN label %q", label, cur.Type)})
			}
			der, err := decodeBody(body)
			if err != nil {
				fail(&Error{Err: ErrBase64, Block: nBlocks, Line: bodyLine, Detail: err.Error()})
			} else if len(der) == 0 {
				fail(&Error{Err: ErrMalformed, Block: nBlocks, Line: cur.Line, Detail: "the block is empty"})
			} else {
				cur.Bytes = der
				blocks = append(blocks, *cur)
			}
			cur = nil
			continue
		}
		if bytes.HasPrefix(line, []byte(beginPrefix)) {
			fail(&Error{Err: ErrTruncated, Block: nBlocks, Line: cur.Line, Detail: fmt.Sprintf("no END line before the next BEGIN line at line %d", lineNo)})
			if !start(line, lineNo) {
				return blocks, firstErr
			}
			continue
		}
		if inHeader {
			if len(line) == 0 && cur.Headers != nil {
				inHeader = false
				continue
			}
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && !bytes.ContainsAny(k, " \t") && len(k) > 0 {
				if cur.Headers == nil {
					cur.Headers = map[string]string{}
				}
				cur.Headers[string(k)] = string(bytes.TrimSpace(v))
				continue
			}
			inHeader = false
		}
		if len(line) == 0 {
			continue
		}
		for i, c := range line {
			if !isB64(c) {
				fail(&Error{Err: ErrBase64, Block: nBlocks, Line: lineNo, Detail: fmt.Sprintf("character %d of the line is not base64", i+1)})
				break
			}
		}
		if bodyLine == 0 {
			bodyLine = lineNo
		}
		body = append(body, line...)
	}
	if cur != nil {
		fail(&Error{Err: ErrTruncated, Block: nBlocks, Line: cur.Line, Detail: fmt.Sprintf("the %q block has no END line; the input ends at line %d", cur.Type, lineNo)})
	}
	if len(blocks) == 0 && firstErr == nil {
		// Every caller indexes the first block: no block is never a success.
		firstErr = &Error{Err: ErrEmpty, Detail: "no -----BEGIN line starts a line"}
	}
	return blocks, firstErr
}

func decodeBody(body []byte) ([]byte, error) {
	der := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	n, err := base64.StdEncoding.Decode(der, body)
	if err != nil {
		var ce base64.CorruptInputError
		if ok := asCorrupt(err, &ce); ok {
			return nil, fmt.Errorf("base64 does not decode (bad padding or length near character %d of the body)", int64(ce)+1)
		}
		return nil, fmt.Errorf("base64 does not decode")
	}
	return der[:n], nil
}

func asCorrupt(err error, ce *base64.CorruptInputError) bool {
	c, ok := err.(base64.CorruptInputError)
	if ok {
		*ce = c
	}
	return ok
}

// armorLabel extracts LABEL from "-----BEGIN LABEL-----". Labels are
// limited to printable ASCII letters, digits, spaces and "#-" and to
// maxLabelLen bytes, so an error can quote them safely.
func armorLabel(line []byte, prefix string) (string, bool) {
	s := string(line)
	if !strings.HasPrefix(s, prefix) || !strings.HasSuffix(s, dashes) || len(s) < len(prefix)+len(dashes) {
		return "(unreadable label)", false
	}
	label := s[len(prefix) : len(s)-len(dashes)]
	if len(label) == 0 || len(label) > maxLabelLen {
		return "(unreadable label)", false
	}
	for _, c := range []byte(label) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ' ' || c == '#' || c == '-') {
			return "(unreadable label)", false
		}
	}
	return label, true
}

// junkError judges a line outside any PEM block. Explanatory text (RFC
// 7468 section 5.2: what "openssl ca" or "openssl x509 -text" print before
// the block, "subject=" lines, PKCS#12 "Bag Attributes") is skipped: it
// returns nil. Binary bytes and lines that look like base64 data without
// armor are refused, since they are data, not explanation.
func junkError(line []byte, lineNo, blocksSoFar int) *Error {
	where := "before the first PEM block"
	if blocksSoFar > 0 {
		where = fmt.Sprintf("after PEM block %d", blocksSoFar)
	}
	binary := !utf8.Valid(line)
	for _, c := range line {
		if c < 0x20 && c != '\t' || c == 0x7f {
			binary = true
		}
	}
	if i := markerAt(line); i > 0 {
		return &Error{Err: ErrMalformed, Line: lineNo, Detail: fmt.Sprintf("%s; a -----BEGIN or -----END line must start at the beginning of its line, and this one starts at character %d", where, i+1)}
	}
	switch {
	case binary && line[0] == 0x30:
		return &Error{Err: ErrJunk, Line: lineNo, Detail: where + "; it looks like binary DER (give PEM text only)"}
	case binary:
		return &Error{Err: ErrJunk, Line: lineNo, Detail: where + "; it holds binary bytes (give PEM text only)"}
	}
	if len(line) >= minDataLine && allB64(line) {
		return &Error{Err: ErrJunk, Line: lineNo, Detail: where + "; it looks like base64 data outside -----BEGIN and -----END lines"}
	}
	return nil
}

// markerAt returns where a BEGIN or END marker starts in line, or -1.
func markerAt(line []byte) int {
	i := bytes.Index(line, []byte(beginPrefix))
	if j := bytes.Index(line, []byte(endPrefix)); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	return i
}

// minDataLine is the length from which a base64-only line outside a block
// counts as data rather than explanatory text.
const minDataLine = 16

func allB64(line []byte) bool {
	for _, c := range line {
		if !isB64(c) {
			return false
		}
	}
	return true
}

type derShape int

const (
	shapeUnknown  derShape = iota
	shapeCertLike          // SEQUENCE { SEQUENCE, SEQUENCE, BIT STRING }: certificate, CRL, CSR
	shapePrivateKey
	shapeOpenSSHKey
	shapePFX
)

var (
	oidPKCS7Data       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidPKCS7SignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// classifyDER recognises the shape of the top-level DER structure without
// parsing keys (cheap and safe on hostile input).
func classifyDER(der []byte) derShape {
	if bytes.HasPrefix(der, []byte("openssh-key-v1\x00")) {
		return shapeOpenSSHKey
	}
	var outer asn1.RawValue
	if _, err := asn1.Unmarshal(der, &outer); err != nil || outer.Class != asn1.ClassUniversal || outer.Tag != asn1.TagSequence || !outer.IsCompound {
		return shapeUnknown
	}
	// Read up to 10 elements of the outer SEQUENCE.
	var elems []asn1.RawValue
	for rest := outer.Bytes; len(rest) > 0 && len(elems) < 10; {
		var e asn1.RawValue
		var err error
		rest, err = asn1.Unmarshal(rest, &e)
		if err != nil {
			break
		}
		elems = append(elems, e)
	}
	is := func(i, tag int) bool {
		return i < len(elems) && elems[i].Class == asn1.ClassUniversal && elems[i].Tag == tag
	}
	smallInt := func(i int) (int, bool) {
		if !is(i, asn1.TagInteger) {
			return 0, false
		}
		var v int
		if _, err := asn1.Unmarshal(elems[i].FullBytes, &v); err != nil {
			return 0, false
		}
		return v, true
	}
	switch {
	case len(elems) == 3 && is(0, asn1.TagSequence) && is(1, asn1.TagSequence) && is(2, asn1.TagBitString):
		return shapeCertLike
	case is(0, asn1.TagInteger) && is(1, asn1.TagSequence):
		if v, _ := smallInt(0); v == 3 {
			// PFX: version 3, ContentInfo { contentType OID, ... }.
			var oid asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(elems[1].Bytes, &oid); err == nil && (oid.Equal(oidPKCS7Data) || oid.Equal(oidPKCS7SignedData)) {
				return shapePFX
			}
		}
		// PKCS#8 PrivateKeyInfo: version 0|1, AlgorithmIdentifier, OCTET STRING.
		if v, ok := smallInt(0); ok && (v == 0 || v == 1) && is(2, asn1.TagOctetString) {
			return shapePrivateKey
		}
	case len(elems) == 2 && is(0, asn1.TagSequence) && is(1, asn1.TagOctetString):
		// EncryptedPrivateKeyInfo.
		return shapePrivateKey
	case is(0, asn1.TagInteger) && is(1, asn1.TagOctetString):
		// SEC 1 ECPrivateKey: version 1, privateKey OCTET STRING.
		if v, ok := smallInt(0); ok && v == 1 {
			return shapePrivateKey
		}
	case len(elems) >= 9 && is(0, asn1.TagInteger):
		// PKCS#1 RSAPrivateKey: version and eight INTEGERs.
		for i := 0; i < 9; i++ {
			if !is(i, asn1.TagInteger) {
				return shapeUnknown
			}
		}
		return shapePrivateKey
	}
	return shapeUnknown
}
