// Package redact is the one rendering of values and error texts for
// clients and logs: a value is never quoted whole (at most MaxQuoted
// characters, then its size), and private key material is never shown.
package redact

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/pkiagent/pkiagent/internal/pemx"
)

// MaxQuoted is the most characters of a value an error quotes.
const MaxQuoted = 64

// MaxMessage bounds an error text sent to a client or logged for a failed
// request, in bytes.
const MaxMessage = 2048

// KeyMaterial is what stands for private key material in a text.
const KeyMaterial = "(private key material, not shown)"

// Value returns v quoted for an error message: Go-quoted when it is at
// most MaxQuoted characters, else its first MaxQuoted characters and its
// size, as in `"MIIBIjANBg..." ... (1048576 bytes)`. A value holding
// private key material (pemx.FindPrivateKey) is not quoted at all.
func Value(v string) string {
	if pemx.FindPrivateKey([]byte(v)) != nil {
		return fmt.Sprintf("%s (%d bytes)", KeyMaterial, len(v))
	}
	if utf8.RuneCountInString(v) <= MaxQuoted {
		return fmt.Sprintf("%q", v)
	}
	n := 0
	for i := range v {
		if n == MaxQuoted {
			return fmt.Sprintf("%q... (%d bytes)", v[:i], len(v))
		}
		n++
	}
	return fmt.Sprintf("%q", v)
}

// keyBlock matches a PEM private key block (any label ending in PRIVATE
// KEY, in any case, written with real or escaped newlines) up to its END
// line, or to the end of the text when it has none.
var keyBlock = regexp.MustCompile(`(?is)-----BEGIN [A-Z0-9 #-]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 #-]*PRIVATE KEY-----|$)`)

// base64Run is a run of base64 long enough to be encoded data, not words.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{` + fmt.Sprint(MaxQuoted) + `,}={0,2}`)

// maxWord is the longest base64-alphabet run kept whole when it is not key
// material: an object name (64) or a little more.
const maxWord = 100

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// base64Kept is how much of a long base64 run Message keeps: an ASN.1
// header, never key bytes.
const base64Kept = 16

// Message returns an error text as a client or a log line may carry it:
// every PEM private key block and every base64 private key becomes
// KeyMaterial, a run of base64 longer than 100 characters (not hex) is cut
// to its first 16 characters and its size,
// and the whole text is bounded to MaxMessage bytes. It is the last
// guard; the errors themselves quote values with Value.
func Message(s string) string {
	if strings.Contains(strings.ToUpper(s), "PRIVATE KEY") {
		s = keyBlock.ReplaceAllLiteralString(s, KeyMaterial)
	}
	s = base64Run.ReplaceAllStringFunc(s, func(run string) string {
		switch {
		case pemx.FindPrivateKey([]byte(run)) != nil:
			return KeyMaterial
		case len(run) <= maxWord || isHex(run):
			return run // a long name, a SHA-256 fingerprint
		}
		return fmt.Sprintf("%s... (%d characters of base64)", run[:base64Kept], len(run))
	})
	if len(s) > MaxMessage {
		cut := MaxMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = fmt.Sprintf("%s... (%d bytes)", s[:cut], len(s))
	}
	return s
}
