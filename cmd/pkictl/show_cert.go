package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

type certificate struct {
	Name                 string   `json:"name"`
	Subject              string   `json:"subject,omitempty"`
	Issuer               string   `json:"issuer,omitempty"`
	Serial               string   `json:"serial,omitempty"`
	NotBefore            string   `json:"not-before,omitempty"`
	NotAfter             string   `json:"not-after,omitempty"`
	Fingerprint          string   `json:"fingerprint-sha256,omitempty"`
	KeyAlgorithm         string   `json:"key-algorithm,omitempty"`
	KeyStorage           string   `json:"key-storage,omitempty"`
	CRLDistributionPoint []string `json:"crl-distribution-point,omitempty"`
	Status               string   `json:"status"`
	PEM                  string   `json:"pem,omitempty"`
}

type trustedCA struct {
	Name           string `json:"name"`
	ValidationMode string `json:"validation-mode"`
	State          struct {
		Status      string   `json:"status"`
		Warning     []string `json:"warning,omitempty"`
		Certificate []struct {
			Fingerprint string `json:"fingerprint-sha256"`
			Subject     string `json:"subject"`
			Issuer      string `json:"issuer"`
			Serial      string `json:"serial"`
			NotBefore   string `json:"not-before"`
			NotAfter    string `json:"not-after"`
		} `json:"certificate"`
	} `json:"state"`
}

func (e *env) certificates(ctx context.Context) ([]certificate, error) {
	var certs []certificate
	if err := e.getInto(ctx, "/certificates", "certificate", &certs); err != nil {
		return nil, err
	}
	slices.SortFunc(certs, func(a, b certificate) int { return strings.Compare(a.Name, b.Name) })
	return certs, nil
}

func (e *env) trustedCAs(ctx context.Context) ([]trustedCA, error) {
	var cas []trustedCA
	if err := e.getInto(ctx, "/authority", "trusted-ca-certificate", &cas); err != nil {
		return nil, err
	}
	slices.SortFunc(cas, func(a, b trustedCA) int { return strings.Compare(a.Name, b.Name) })
	for i := range cas {
		cas[i].ValidationMode = orDash(cas[i].ValidationMode)
	}
	return cas, nil
}

func showCertificate(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("show certificate", flag.ContinueOnError)
	detail := fs.Bool("detail", false, "decode the certificate like openssl x509 -text, with status, chain and PEM")
	pos, err := e.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	certs, err := e.certificates(ctx)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		certs = slices.DeleteFunc(certs, func(c certificate) bool { return c.Name != pos[0] })
		if len(certs) == 0 {
			return userErrorf("no certificate %q on the agent (show certificate lists them)", clip(pos[0]))
		}
	}
	if !*detail {
		for i := range certs {
			certs[i].PEM = ""
		}
		return e.emit(view{data: map[string]any{"certificate": certs}, render: func(w io.Writer, width int) { certTable(certs).render(w, width) }})
	}
	cas, err := e.trustedCAs(ctx)
	if err != nil {
		return err
	}
	return e.emit(view{data: map[string]any{"certificate": certs}, render: func(w io.Writer, width int) {
		for i, c := range certs {
			if i > 0 {
				fmt.Fprintln(w)
			}
			certDetail(c, cas).render(w, width)
		}
	}})
}

func certTable(certs []certificate) *table {
	t := &table{headers: []string{"NAME", "STATUS", "SUBJECT", "ISSUER", "SERIAL", "EXPIRES", "KEY"}}
	for _, c := range certs {
		key := c.KeyAlgorithm
		if c.KeyStorage != "" {
			key += " (" + c.KeyStorage + ")"
		}
		t.add(c.Name, c.Status, orDash(c.Subject), orDash(c.Issuer), orDash(c.Serial), orDash(c.NotAfter), orDash(key))
	}
	return t
}

// certDetail is the --detail view of one certificate: what openssl x509
// -text shows that an operator checks, then the agent's verdict, the chain
// to the trusted CA and the PEM.
func certDetail(c certificate, cas []trustedCA) *fields {
	f := &fields{}
	f.heading("Certificate " + c.Name)
	f.add("Status", c.Status)
	f.add("Key storage", orDash(c.KeyStorage))
	var cert *x509.Certificate
	if b, _ := pem.Decode([]byte(c.PEM)); b != nil {
		cert, _ = x509.ParseCertificate(b.Bytes)
	}
	if cert == nil {
		f.add("Key algorithm", orDash(c.KeyAlgorithm))
		f.add("Certificate", "none imported yet (pkictl csr, then pkictl import)")
		return f
	}
	f.add("Version", fmt.Sprint(cert.Version))
	f.add("Serial Number", colonHex(cert.SerialNumber.Bytes()))
	f.add("Signature Algorithm", cert.SignatureAlgorithm.String())
	f.add("Issuer", c.Issuer)
	f.add("Subject", c.Subject)
	f.add("Not Before", cert.NotBefore.UTC().Format(time.RFC3339))
	f.add("Not After", cert.NotAfter.UTC().Format(time.RFC3339))
	f.add("Public Key", publicKeyText(cert.PublicKey))
	if s := sanText(cert); s != "" {
		f.add("Subject Alt Names", s)
	}
	f.add("Key Usage", orDash(strings.Join(keyUsageText(cert.KeyUsage), ", ")))
	f.add("Extended Key Usage", orDash(strings.Join(extKeyUsageText(cert), ", ")))
	if len(cert.CRLDistributionPoints) > 0 {
		f.add("CRL Distribution Points", strings.Join(cert.CRLDistributionPoints, "\n"))
	}
	f.add("SHA-256 Fingerprint", c.Fingerprint)
	f.add("Chain", strings.Join(chainOf(c.Issuer, cas), "\n"))
	f.add("PEM", strings.TrimSpace(c.PEM))
	return f
}

// chainOf follows issuer names through the trusted CA certificates up to a
// self-signed one: the path the agent's chain check verified.
func chainOf(issuer string, cas []trustedCA) []string {
	find := func(subject string) (string, string, string, bool) {
		for _, ca := range cas {
			for _, cc := range ca.State.Certificate {
				if cc.Subject == subject {
					return ca.Name, cc.Issuer, cc.NotAfter, true
				}
			}
		}
		return "", "", "", false
	}
	var out []string
	for range 8 {
		name, next, until, ok := find(issuer)
		if !ok {
			break
		}
		out = append(out, fmt.Sprintf("%s (trusted CA %s, until %s)", issuer, name, until))
		if next == issuer {
			break
		}
		issuer = next
	}
	if len(out) == 0 {
		return []string{issuer + " (not among the trusted CA certificates)"}
	}
	return out
}

func colonHex(b []byte) string {
	if len(b) == 0 {
		return "00"
	}
	s := make([]string, len(b))
	for i, x := range b {
		s[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(s, ":")
}

func publicKeyText(k any) string {
	switch p := k.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d bit", p.N.BitLen())
	case *ecdsa.PublicKey:
		return fmt.Sprintf("ECDSA %s (%d bit)", p.Curve.Params().Name, p.Curve.Params().BitSize)
	case ed25519.PublicKey:
		return "Ed25519 (256 bit)"
	}
	return fmt.Sprintf("%T", k)
}

func sanText(c *x509.Certificate) string {
	var s []string
	for _, d := range c.DNSNames {
		s = append(s, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		s = append(s, "IP:"+ip.String())
	}
	for _, u := range c.URIs {
		s = append(s, "URI:"+u.String())
	}
	for _, m := range c.EmailAddresses {
		s = append(s, "email:"+m)
	}
	return strings.Join(s, ", ")
}

func keyUsageText(ku x509.KeyUsage) []string {
	names := []string{"Digital Signature", "Non Repudiation", "Key Encipherment", "Data Encipherment", "Key Agreement", "Certificate Sign", "CRL Sign", "Encipher Only", "Decipher Only"}
	var out []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func extKeyUsageText(c *x509.Certificate) []string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageAny: "Any", x509.ExtKeyUsageServerAuth: "TLS Web Server Authentication",
		x509.ExtKeyUsageClientAuth: "TLS Web Client Authentication", x509.ExtKeyUsageCodeSigning: "Code Signing",
		x509.ExtKeyUsageEmailProtection: "E-mail Protection", x509.ExtKeyUsageTimeStamping: "Time Stamping",
		x509.ExtKeyUsageOCSPSigning: "OCSP Signing",
	}
	var out []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprint(u))
		}
	}
	for _, o := range c.UnknownExtKeyUsage {
		out = append(out, o.String())
	}
	return out
}

// --- show trusted-ca

func showTrustedCA(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("show trusted-ca", flag.ContinueOnError), args, 0, 1)
	if err != nil {
		return err
	}
	cas, err := e.trustedCAs(ctx)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		cas = slices.DeleteFunc(cas, func(c trustedCA) bool { return c.Name != pos[0] })
		if len(cas) == 0 {
			return userErrorf("no trusted CA %q is configured", clip(pos[0]))
		}
	}
	return e.emit(view{data: map[string]any{"trusted-ca-certificate": cas}, render: func(w io.Writer, width int) { caTable(cas).render(w, width) }})
}

// caTable has a row per certificate of each chain, the chain's name and
// status on its first.
func caTable(cas []trustedCA) *table {
	t := &table{headers: []string{"NAME", "MODE", "STATUS", "SUBJECT", "ISSUER", "SERIAL", "EXPIRES"}}
	for _, ca := range cas {
		status := orDash(ca.State.Status)
		if len(ca.State.Warning) > 0 {
			status += ": " + strings.Join(ca.State.Warning, "; ")
		}
		if len(ca.State.Certificate) == 0 {
			t.add(ca.Name, ca.ValidationMode, status, "-", "-", "-", "-")
		}
		for i, c := range ca.State.Certificate {
			name, mode, st := ca.Name, ca.ValidationMode, status
			if i > 0 {
				name, mode, st = "", "", ""
			}
			t.add(name, mode, st, c.Subject, c.Issuer, c.Serial, c.NotAfter)
		}
	}
	return t
}

// --- show keys

// key is a device key as /keys/key reports it, with the public key's type
// and digest worked out by pkictl.
type key struct {
	Name        string `json:"name"`
	Algorithm   string `json:"algorithm"`
	Size        int    `json:"size,omitempty"`
	Curve       string `json:"curve,omitempty"`
	Storage     string `json:"key-storage"`
	PublicKey   string `json:"public-key,omitempty"`
	Type        string `json:"type,omitempty"`
	Fingerprint string `json:"public-key-sha256,omitempty"`
}

func showKeys(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("show keys", flag.ContinueOnError), args, 0, 1)
	if err != nil {
		return err
	}
	var keys []key
	if err := e.getInto(ctx, "/keys", "key", &keys); err != nil {
		return err
	}
	slices.SortFunc(keys, func(a, b key) int { return strings.Compare(a.Name, b.Name) })
	if len(pos) == 1 {
		keys = slices.DeleteFunc(keys, func(k key) bool { return k.Name != pos[0] })
		if len(keys) == 0 {
			return userErrorf("no key %q on the agent (key generate creates one)", clip(pos[0]))
		}
	}
	for i, k := range keys {
		keys[i].Storage = stripModule(k.Storage)
		if b, _ := pem.Decode([]byte(k.PublicKey)); b != nil {
			if pub, err := x509.ParsePKIXPublicKey(b.Bytes); err == nil {
				keys[i].Type = publicKeyText(pub)
				sum := sha256.Sum256(b.Bytes)
				keys[i].Fingerprint = hex.EncodeToString(sum[:])
			}
		}
	}
	return e.emit(view{data: map[string]any{"key": keys}, render: func(w io.Writer, width int) { keysView(keys).render(w, width) }})
}

// keysView is like IOS XR's show crypto key mypubkey: label, type, where
// it lives and the public key's DER in hex words.
func keysView(keys []key) *fields {
	f := &fields{}
	for _, k := range keys {
		f.heading("Key label: " + k.Name)
		f.add("Type", orDash(k.Type))
		f.add("Size", fmt.Sprint(k.Size))
		f.add("Storage", k.Storage)
		f.add("SHA-256", orDash(k.Fingerprint))
		if b, _ := pem.Decode([]byte(k.PublicKey)); b != nil {
			f.add("Data", hexWords(b.Bytes))
		}
	}
	return f
}

// hexWords writes b as IOS XR does: upper-case 4-byte words, 8 a line.
func hexWords(b []byte) string {
	var lines []string
	for len(b) > 0 {
		n := min(32, len(b))
		var words []string
		for i := 0; i < n; i += 4 {
			words = append(words, strings.ToUpper(hex.EncodeToString(b[i:min(i+4, n)])))
		}
		lines = append(lines, strings.Join(words, " "))
		b = b[n:]
	}
	return strings.Join(lines, "\n")
}
