package cmp_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"github.com/pkiagent/pkiagent/pki/cmp"
)

// An initial registration with a pre-shared secret, then a renewal with a
// new key, signed by the certificate in force.
func Example() {
	var (
		trusted       *x509.CertPool // the ca-profile's trusted-ca
		key, newKey   crypto.Signer  // from the keystore (file or TPM)
		secret        []byte         // cmpv2/secret, never logged
		ctx           = context.Background()
		routerSubject = pkix.Name{Country: []string{"NL"}, Organization: []string{"Nokia"}, CommonName: "sr"}
		caSubject     = pkix.Name{CommonName: "ManagementCA"}
	)
	c := &cmp.Client{URL: "http://ca:8080/ejbca/publicweb/cmp/CMP-Server", Trusted: trusted,
		Recipient: caSubject, Timeout: 30 * time.Second}
	res, err := c.Enroll(ctx, cmp.Request{Kind: cmp.IR, Key: key, Subject: routerSubject,
		DNSNames: []string{"sr.example.net"}, Protection: cmp.PBM{Reference: "1", Secret: secret}})
	var e *cmp.Error
	switch {
	case errors.Is(err, cmp.ErrRejected) && errors.As(err, &e):
		fmt.Println("refused:", e.FailInfo)
		return
	case err != nil:
		fmt.Println(err) // for last-error and the alarm
		return
	}
	_, err = c.Enroll(ctx, cmp.Request{Kind: cmp.KUR, Key: newKey, Subject: routerSubject,
		Protection: cmp.Signature{Cert: res.Cert, Key: key}})
	fmt.Println(err)
}
