package cmp

import (
	"errors"
	"fmt"
	"strings"
)

// The kinds of failure an Enroll error matches with errors.Is, so a caller
// can tell an operator what to fix.
var (
	// ErrInvalidRequest: the Request itself is incomplete or inconsistent.
	ErrInvalidRequest = errors.New("invalid enrollment request")
	// ErrUnreachable: no HTTP answer from the CA (connection, DNS, proxy).
	ErrUnreachable = errors.New("CA unreachable")
	// ErrTimeout: the transaction did not finish within the timeout, or the
	// CA kept answering waiting beyond the timeout or the poll limit.
	ErrTimeout = errors.New("CA timed out")
	// ErrBadResponse: the answer is not a well-formed CMP response to our
	// request (HTTP status, size, DER, transaction ID, nonce, body type).
	ErrBadResponse = errors.New("bad response from the CA")
	// ErrProtection: the response's MAC or signature does not verify, is
	// missing, or is by a certificate that does not chain to the trusted CA.
	ErrProtection = errors.New("CA response protection failed")
	// ErrRejected: the CA refused the request; Error.FailInfo says why.
	ErrRejected = errors.New("rejected by the CA")
	// ErrWrongKey: the issued certificate certifies another public key.
	ErrWrongKey = errors.New("issued certificate is for another key")
	// ErrBadCertificate: the issued certificate has another subject, or
	// does not chain to the trusted CA.
	ErrBadCertificate = errors.New("issued certificate refused")
)

// Error is what Enroll returns: a kind (one of the Err variables), operator
// words, the CA's failure reasons when it sent some, and the cause. Its text
// never carries a secret or key material, and quotes what the CA sent only
// bounded.
type Error struct {
	Kind error
	// Msg says what happened in operator words.
	Msg string
	// FailInfo holds the PKIFailureInfo names the CA gave (badPOP,
	// badMessageCheck, ...), in bit order.
	FailInfo []string
	// Err is the underlying cause, if any.
	Err error
	// TransactionID is the failed transaction's ID, nil when none began.
	TransactionID []byte
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Msg)
	if len(e.FailInfo) > 0 {
		fmt.Fprintf(&b, " (failInfo %s)", strings.Join(e.FailInfo, ", "))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap makes errors.Is match both the kind and the cause.
func (e *Error) Unwrap() []error {
	errs := []error{e.Kind}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func newError(kind error, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// failInfoNames are the PKIFailureInfo bits of RFC 4210 5.2.3, by bit.
var failInfoNames = []string{
	"badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId",
	"badDataFormat", "wrongAuthority", "incorrectData", "missingTimeStamp",
	"badPOP", "certRevoked", "certConfirmed", "wrongIntegrity",
	"badRecipientNonce", "timeNotAvailable", "unacceptedPolicy",
	"unacceptedExtension", "addInfoNotAvailable", "badSenderNonce",
	"badCertTemplate", "signerNotTrusted", "transactionIdInUse",
	"unsupportedVersion", "notAuthorized", "systemUnavail", "systemFailure",
	"duplicateCertReq",
}

// failInfoMeaning explains the failures an operator can act on.
var failInfoMeaning = map[string]string{
	"badMessageCheck":   "the CA could not verify our protection (wrong shared secret or reference, or a certificate it does not trust)",
	"badPOP":            "the CA refused our proof of possession of the key",
	"badCertId":         "the CA does not know the certificate being renewed",
	"notAuthorized":     "the CA does not authorize this request",
	"badCertTemplate":   "the CA refused the requested subject, names or key",
	"signerNotTrusted":  "the CA does not trust the certificate that protects our request",
	"badAlg":            "the CA refused an algorithm we used",
	"badTime":           "the CA and this router disagree on the time",
	"wrongAuthority":    "the request reached the wrong CA (check recipient)",
	"systemUnavail":     "the CA is unavailable",
	"systemFailure":     "the CA failed",
	"badRecipientNonce": "the CA saw a wrong nonce",
	"duplicateCertReq":  "the CA refuses a duplicate request",
}

func failInfoWords(bits []int) []string {
	var words []string
	for _, b := range bits {
		if b >= 0 && b < len(failInfoNames) {
			words = append(words, failInfoNames[b])
		} else {
			words = append(words, fmt.Sprintf("bit%d", b))
		}
	}
	return words
}

var statusNames = []string{"accepted", "grantedWithMods", "rejection", "waiting",
	"revocationWarning", "revocationNotification", "keyUpdateWarning"}

func statusName(s int64) string {
	if s >= 0 && s < int64(len(statusNames)) {
		return statusNames[s]
	}
	return fmt.Sprintf("status %d", s)
}
