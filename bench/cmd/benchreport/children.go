package main

import (
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/pkiagent/pkiagent/pki/crl"
	"github.com/pkiagent/pkiagent/pki/peer"
)

// The measured side of the pairs runs as a child process of its own, as
// openssl does, so its time and peak RSS are those of one process doing
// one job: "crl-ingest" and "peer-verify" below.

func loadCA(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

// ingestCRL reads, verifies and indexes a CRL file as the agent's fetch
// does (crl.ReadVerified, streaming).
func ingestCRL(caPath, file string) (*crl.CRL, error) {
	ca, err := loadCA(caPath)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, _, _, err := crl.ReadVerified(f, crl.DefaultMaxSize, []*x509.Certificate{ca})
	return c, err
}

func runCRLIngest(args []string) error {
	fs := flag.NewFlagSet("crl-ingest", flag.ExitOnError)
	caPath := fs.String("ca", "", "CA certificate (PEM)")
	fs.Parse(args)
	c, err := ingestCRL(*caPath, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Println(c.Serials.Len())
	return nil
}

// crlIndex is a peer.Index over one CRL.
type crlIndex struct{ c *crl.CRL }

func (i crlIndex) IsRevoked(rawIssuer []byte, serial *big.Int) bool {
	return string(rawIssuer) == string(i.c.RawIssuer) && i.c.Serials.Contains(serial)
}

// runPeerVerify validates a peer chain against the CA with the CRL, as
// validate-peer-certificate does: the CRL is ingested first, as `openssl
// verify -crl_check` loads it.
func runPeerVerify(args []string) error {
	fs := flag.NewFlagSet("peer-verify", flag.ExitOnError)
	caPath := fs.String("ca", "", "CA certificate (PEM)")
	crlPath := fs.String("crl", "", "CRL (DER)")
	id := fs.String("identifier", "", "the peer's expected CN")
	fs.Parse(args)
	c, err := ingestCRL(*caPath, *crlPath)
	if err != nil {
		return err
	}
	ca, err := loadCA(*caPath)
	if err != nil {
		return err
	}
	anchors, err := peer.NewAnchors(map[string][]*x509.Certificate{"bench": {ca}})
	if err != nil {
		return err
	}
	chain, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	v, err := peer.NewValidator(crlIndex{c}, 0).Validate(chain, *id, anchors, time.Now())
	if err != nil {
		return err
	}
	if v.Result != peer.Valid {
		return fmt.Errorf("%s: %s", v.Result, v.Reason)
	}
	fmt.Println(v.Result)
	return nil
}
