package tpm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/google/go-tpm/tpm2"

	"github.com/pkiagent/pkiagent/pki/keystore"
)

// key is the crypto.Signer of a TPM key: it holds the public key and the
// TPM-encrypted blob, and every Sign loads the blob into the TPM, signs there
// and flushes it.
type key struct {
	s    *Store
	name string
	alg  string
	b    *blob
	pub  crypto.PublicKey
	ecc  bool
}

func (s *Store) newKey(name string, b *blob) (*key, error) {
	pub, err := b.public.Contents()
	if err != nil {
		return nil, fmt.Errorf("key %s: public area: %w", name, err)
	}
	cpub, err := tpm2.Pub(*pub)
	if err != nil {
		return nil, fmt.Errorf("key %s: public key: %w", name, err)
	}
	spec, err := keystore.SpecOf(cpub)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	a := pub.ObjectAttributes
	if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.SignEncrypt || a.Restricted {
		return nil, fmt.Errorf("key %s: not a non-exportable TPM signing key (attributes fixedTPM=%t fixedParent=%t sensitiveDataOrigin=%t sign=%t restricted=%t)",
			name, a.FixedTPM, a.FixedParent, a.SensitiveDataOrigin, a.SignEncrypt, a.Restricted)
	}
	return &key{s: s, name: name, alg: spec.String(), b: b, pub: cpub, ecc: pub.Type == tpm2.TPMAlgECC}, nil
}

// Public implements crypto.Signer: *ecdsa.PublicKey or *rsa.PublicKey.
func (k *key) Public() crypto.PublicKey { return k.pub }

// String describes the key.
func (k *key) String() string { return fmt.Sprintf("tpm key %s (%s)", k.name, k.alg) }

// GoString keeps %#v short.
func (k *key) GoString() string { return k.String() }

// Sign implements crypto.Signer inside the TPM. ECC keys sign ECDSA (ASN.1
// DER signature); RSA keys sign RSASSA-PKCS1-v1_5, or RSASSA-PSS with a salt
// as long as the hash when opts is *rsa.PSSOptions. The digest must be
// SHA-256, SHA-384 or SHA-512 (for ECDSA the hash may be left 0 and is then
// taken from the digest length). rand is unused: the TPM has its own.
func (k *key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignContext(context.Background(), digest, opts)
}

// SignContext is Sign giving up while waiting for the TPM when ctx is done.
func (k *key) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := crypto.Hash(0)
	if opts != nil {
		h = opts.HashFunc()
	}
	if h == 0 && k.ecc {
		switch len(digest) {
		case 32:
			h = crypto.SHA256
		case 48:
			h = crypto.SHA384
		case 64:
			h = crypto.SHA512
		}
	}
	alg, ok := tpmHash(h)
	if !ok {
		return nil, fmt.Errorf("sign with TPM key %s: %w: digest algorithm %v (want SHA-256, SHA-384 or SHA-512)", k.name, keystore.ErrUnsupported, h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("sign with TPM key %s: digest is %d bytes, %v needs %d", k.name, len(digest), h, h.Size())
	}
	scheme := tpm2.TPMAlgECDSA
	pss, isPSS := opts.(*rsa.PSSOptions)
	switch {
	case k.ecc && isPSS:
		return nil, fmt.Errorf("sign with TPM key %s: %w: PSS options for an ECDSA key", k.name, keystore.ErrUnsupported)
	case isPSS:
		if pss.SaltLength != rsa.PSSSaltLengthAuto && pss.SaltLength != rsa.PSSSaltLengthEqualsHash && pss.SaltLength != h.Size() {
			return nil, fmt.Errorf("sign with TPM key %s: %w: PSS salt length %d (the TPM uses the hash length, %d)", k.name, keystore.ErrUnsupported, pss.SaltLength, h.Size())
		}
		scheme = tpm2.TPMAlgRSAPSS
	case !k.ecc:
		scheme = tpm2.TPMAlgRSASSA
	}

	if err := k.s.acquire(ctx); err != nil {
		return nil, fmt.Errorf("sign with TPM key %s: %w", k.name, err)
	}
	var sig *tpm2.TPMTSignature
	err := k.s.withKey(k.b, func(kh tpm2.NamedHandle) error {
		rsp, err := execute("TPM2_Sign", func() (*tpm2.SignResponse, error) {
			return tpm2.Sign{
				KeyHandle: tpm2.AuthHandle{Handle: kh.Handle, Name: kh.Name, Auth: tpm2.PasswordAuth(nil)},
				Digest:    tpm2.TPM2BDigest{Buffer: digest},
				InScheme: tpm2.TPMTSigScheme{
					Scheme:  scheme,
					Details: tpm2.NewTPMUSigScheme(scheme, &tpm2.TPMSSchemeHash{HashAlg: alg}),
				},
				Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
			}.Execute(k.s.tpm)
		})
		if err != nil {
			return err
		}
		sig = &rsp.Signature
		return nil
	})
	k.s.release()
	if err != nil {
		return nil, fmt.Errorf("sign with TPM key %s: %w", k.name, err)
	}
	out, err := encodeSignature(sig, scheme)
	if err != nil {
		return nil, fmt.Errorf("sign with TPM key %s: %w", k.name, err)
	}
	if isPSS && pss.SaltLength != rsa.PSSSaltLengthAuto {
		// TPMs before spec revision 1.38 may use the longest salt instead
		// of the hash length; refuse rather than hand out a signature that
		// TLS 1.3 would reject.
		if err := rsa.VerifyPSS(k.pub.(*rsa.PublicKey), h, digest, out, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			return nil, fmt.Errorf("sign with TPM key %s: %w: the TPM's PSS signature does not use a salt as long as the hash", k.name, keystore.ErrUnsupported)
		}
	}
	return out, nil
}

func encodeSignature(sig *tpm2.TPMTSignature, scheme tpm2.TPMAlgID) ([]byte, error) {
	if sig.SigAlg != scheme {
		return nil, fmt.Errorf("TPM returned a %#x signature, asked for %#x", uint16(sig.SigAlg), uint16(scheme))
	}
	switch scheme {
	case tpm2.TPMAlgECDSA:
		e, err := sig.Signature.ECDSA()
		if err != nil {
			return nil, fmt.Errorf("decode ECDSA signature: %w", err)
		}
		return asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(e.SignatureR.Buffer),
			new(big.Int).SetBytes(e.SignatureS.Buffer),
		})
	case tpm2.TPMAlgRSASSA:
		r, err := sig.Signature.RSASSA()
		if err != nil {
			return nil, fmt.Errorf("decode RSASSA signature: %w", err)
		}
		return r.Sig.Buffer, nil
	case tpm2.TPMAlgRSAPSS:
		r, err := sig.Signature.RSAPSS()
		if err != nil {
			return nil, fmt.Errorf("decode RSAPSS signature: %w", err)
		}
		return r.Sig.Buffer, nil
	}
	return nil, errors.New("unknown signature scheme")
}

var _ crypto.Signer = (*key)(nil)
