// Package pemx parses PEM text that comes from outside the agent
// (configuration leaves, RPC input) within fixed bounds, refusing private
// keys and PKCS#12 without ever echoing them, and saying precisely what is
// wrong with malformed input.
//
// Limits (DefaultLimits): a content value is at most 1 MiB (MaxBytes) and
// holds at most 16 PEM blocks (MaxBlocks). Larger input is refused before it
// is scanned, so memory stays bounded by the input size.
//
// Outside PEM blocks, explanatory text is skipped as RFC 7468 (section
// 5.2) asks: the dump "openssl ca" and "openssl x509 -text" print before a
// certificate, "subject=" lines, "Bag Attributes". Binary bytes and lines
// that look like base64 data outside any block are refused with their line
// number. Inside a block the grammar is strict (RFC 1421 headers, base64).
package pemx

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Limits bound what Decode accepts.
type Limits struct {
	// MaxBytes is the largest input accepted, in bytes.
	MaxBytes int
	// MaxBlocks is the largest number of PEM blocks accepted.
	MaxBlocks int
}

// DefaultLimits are the documented limits for one configuration leaf or
// RPC input: 1 MiB and 16 blocks (a chain is at most 8 tiers; 16 leaves room
// for two chains in one bundle).
var DefaultLimits = Limits{MaxBytes: 1 << 20, MaxBlocks: 16}

// Sentinel errors; every error returned by this package wraps exactly one
// of them (test with errors.Is) inside an *Error (errors.As).
var (
	// ErrPrivateKey: the input holds private key material.
	ErrPrivateKey = errors.New("private key material is not accepted")
	// ErrPKCS12: the input is, or holds, a PKCS#12 / PFX bundle.
	ErrPKCS12 = errors.New("PKCS#12 / PFX bundles are not accepted")
	// ErrTooLarge: the input exceeds Limits.MaxBytes.
	ErrTooLarge = errors.New("input too large")
	// ErrTooManyBlocks: the input exceeds Limits.MaxBlocks.
	ErrTooManyBlocks = errors.New("too many PEM blocks")
	// ErrEmpty: no PEM block at all.
	ErrEmpty = errors.New("no PEM block found")
	// ErrDER: binary DER was given where PEM text is expected.
	ErrDER = errors.New("binary DER given where PEM text is expected")
	// ErrNoArmor: bare base64 without BEGIN/END lines.
	ErrNoArmor = errors.New("base64 without PEM armor")
	// ErrTruncated: a block has no END line.
	ErrTruncated = errors.New("truncated PEM")
	// ErrMalformed: a BEGIN/END line or header is malformed, or labels mismatch.
	ErrMalformed = errors.New("malformed PEM")
	// ErrBase64: the body of a block is not valid base64.
	ErrBase64 = errors.New("corrupt base64 in PEM block")
	// ErrJunk: binary bytes or base64 data outside any PEM block.
	ErrJunk = errors.New("data outside PEM blocks")
	// ErrWrongType: a block of another type than expected.
	ErrWrongType = errors.New("unexpected PEM block type")
	// ErrCertificate: a CERTIFICATE block whose DER does not parse.
	ErrCertificate = errors.New("certificate does not parse")
)

// Error describes what is wrong and where. It never holds input bytes
// other than a sanitised, length-limited block label.
type Error struct {
	// Err is one of the package's sentinel errors.
	Err error
	// Block is the 1-based index of the PEM block concerned, 0 if none.
	Block int
	// Line is the 1-based input line concerned, 0 if none.
	Line int
	// Detail says why, in operator words.
	Detail string
	// Cause is an underlying error (e.g. from x509), if any.
	Cause error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("pem: ")
	switch {
	case e.Block > 0 && e.Line > 0:
		fmt.Fprintf(&b, "block %d at line %d: ", e.Block, e.Line)
	case e.Block > 0:
		fmt.Fprintf(&b, "block %d: ", e.Block)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Err.Error())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel and the cause, so errors.Is matches both.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

// Block is one decoded PEM block.
type Block struct {
	// Type is the label of the BEGIN line, e.g. "CERTIFICATE".
	Type string
	// Headers are RFC 1421 headers, if any (rare for certificates).
	Headers map[string]string
	// Bytes is the decoded body.
	Bytes []byte
	// Line is the 1-based line of the BEGIN line.
	Line int
}

// CheckNoPrivateKey is import check 1: it refuses input larger than
// lim.MaxBytes, any mention of a private key ("PRIVATE KEY" in any case,
// PuTTY key files), PKCS#12 (as a labelled block, or as DER with or without
// PEM armor) and DER private keys (PKCS#1, PKCS#8, SEC 1, encrypted PKCS#8),
// whether given bare or inside a block with another label. It looks at the
// whole input even when the PEM is otherwise malformed.
func CheckNoPrivateKey(data []byte, lim Limits) error {
	if err := checkSize(data, lim); err != nil {
		return err
	}
	return findPrivateKey(data, lim.MaxBlocks)
}

// FindPrivateKey is the one detector of private key material, used by
// import check 1 (CheckNoPrivateKey) and by the agent's screening of every
// configuration value and rpc input. It refuses what CheckNoPrivateKey
// describes, without the size limit: the work is linear in len(data), and
// the DER of at most 4 x DefaultLimits.MaxBlocks PEM blocks is looked into
// (a key label is found in any block). It returns an *Error wrapping
// ErrPrivateKey or ErrPKCS12 that says where (line, block) and never
// quotes data, or nil.
func FindPrivateKey(data []byte) error {
	return findPrivateKey(data, 4*DefaultLimits.MaxBlocks)
}

func findPrivateKey(data []byte, maxBlocks int) error {
	if err := scanKeyWords(data); err != nil {
		return err
	}
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		// DER or bare base64: look inside.
		raw := data
		if der, ok := bareBase64(data); ok {
			raw = der
		}
		return checkDER(raw, 0, 0)
	}
	blocks, _ := scan(data, Limits{MaxBlocks: maxBlocks})
	for i, b := range blocks {
		if err := checkDER(b.Bytes, i+1, b.Line); err != nil {
			return err
		}
	}
	return nil
}

// Decode runs CheckNoPrivateKey and then parses data into PEM blocks with
// the grammar of the package comment.
func Decode(data []byte, lim Limits) ([]Block, error) {
	if err := CheckNoPrivateKey(data, lim); err != nil {
		return nil, err
	}
	if !bytes.Contains(data, []byte(beginPrefix)) && !bytes.Contains(data, []byte(endPrefix)) {
		return nil, notPEM(data)
	}
	return scan(data, lim)
}

// Certificates decodes data (see Decode) and parses every block as an X.509
// certificate. Every block must be labelled "CERTIFICATE".
func Certificates(data []byte, lim Limits) ([]*x509.Certificate, error) {
	blocks, err := Decode(data, lim)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, &Error{Err: ErrWrongType, Block: i + 1, Line: b.Line, Detail: wrongTypeDetail(b.Type, "CERTIFICATE")}
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, &Error{Err: ErrCertificate, Block: i + 1, Line: b.Line, Cause: err}
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func wrongTypeDetail(got, want string) string {
	var hint string
	switch got {
	case "X509 CRL":
		hint = " (this is a CRL)"
	case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST":
		hint = " (this is a CSR; give the certificate the CA issued for it)"
	case "TRUSTED CERTIFICATE":
		hint = " (OpenSSL trusted-certificate format; export with 'openssl x509' to get a plain CERTIFICATE)"
	}
	return fmt.Sprintf("got %q, want %q%s", got, want, hint)
}

func checkSize(data []byte, lim Limits) error {
	if lim.MaxBytes > 0 && len(data) > lim.MaxBytes {
		return &Error{Err: ErrTooLarge, Detail: fmt.Sprintf("%d bytes, the limit is %d bytes", len(data), lim.MaxBytes)}
	}
	return nil
}

// keyWords are refused anywhere in the input, case-insensitively.
var keyWords = []struct{ word, what string }{
	{"PRIVATE KEY", ErrPrivateKey.Error()},
	{"PUTTY-USER-KEY-FILE", ErrPrivateKey.Error()},
	{"PKCS12", ErrPKCS12.Error()},
	{"PKCS #12", ErrPKCS12.Error()},
}

func scanKeyWords(data []byte) error {
	line := 1
	for len(data) > 0 {
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(l) >= len("PKCS12") {
			for _, kw := range keyWords {
				if containsFold(l, kw.word) {
					err := ErrPrivateKey
					detail := "the input contains a private key block; only certificates belong here (the private key stays on the device)"
					if kw.what == ErrPKCS12.Error() {
						err = ErrPKCS12
						detail = "the input is a PKCS#12 bundle; give the certificate(s) as PEM without the key"
					}
					return &Error{Err: err, Line: line, Detail: detail}
				}
			}
		}
		line++
	}
	return nil
}

// containsFold reports whether s contains the upper-case ASCII word,
// ignoring ASCII case, without allocating.
func containsFold(s []byte, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		j := 0
		for ; j < len(word); j++ {
			c := s[i+j]
			if c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			if c != word[j] {
				break
			}
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

// bareBase64 reports whether data is only base64 text (and whitespace)
// and, if so, its decoding.
func bareBase64(data []byte) ([]byte, bool) {
	var clean []byte
	for _, c := range data {
		switch {
		case isB64(c):
			clean = append(clean, c)
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		default:
			return nil, false
		}
	}
	if len(clean) == 0 {
		return nil, false
	}
	der, err := base64.StdEncoding.DecodeString(string(clean))
	if err != nil {
		return nil, false
	}
	return der, true
}

func isB64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
}

func checkDER(der []byte, block, line int) error {
	switch classifyDER(der) {
	case shapePrivateKey:
		return &Error{Err: ErrPrivateKey, Block: block, Line: line, Detail: "the data is a DER private key; only certificates belong here (the private key stays on the device)"}
	case shapeOpenSSHKey:
		return &Error{Err: ErrPrivateKey, Block: block, Line: line, Detail: "the data is an OpenSSH private key"}
	case shapePFX:
		return &Error{Err: ErrPKCS12, Block: block, Line: line, Detail: "the data is a DER PKCS#12 bundle; give the certificate(s) as PEM without the key"}
	}
	return nil
}

// notPEM explains input that holds no PEM block.
func notPEM(data []byte) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return &Error{Err: ErrEmpty, Detail: "the input is empty"}
	}
	if _, ok := bareBase64(trimmed); ok {
		return &Error{Err: ErrNoArmor, Detail: "the input is base64 without -----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines"}
	}
	if classifyDER(trimmed) != shapeUnknown || trimmed[0] == 0x30 {
		return &Error{Err: ErrDER, Detail: "convert it with 'openssl x509 -inform der -outform pem'"}
	}
	return &Error{Err: ErrEmpty, Line: 1, Detail: "the input has no -----BEGIN line"}
}
