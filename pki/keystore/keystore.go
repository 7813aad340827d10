// Package keystore declares the contract of the device's private-key stores
// (a file backend and a TPM backend live beside it) and the types they share:
// key specifications, key names and the error vocabulary.
//
// A key is created inside a store and never leaves it: a store hands out
// crypto.Signer handles and public keys, never private key bytes.
package keystore

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pkiagent/pkiagent/agent/api"
)

// Store is a backend holding named private keys that never leave it.
//
// Contract, for every implementation:
//   - Names must pass ValidateName; anything else fails with ErrInvalidName
//     before touching storage, so a name can never escape the store.
//   - Generate refuses a spec that fails KeySpec.Validate (ErrInvalidSpec), a
//     valid spec the backend cannot hold (ErrUnsupported: it never falls back
//     to another kind of key) and an existing name (ErrExists: keys are never
//     overwritten).
//   - Signer, Public and Delete of a missing key fail with an error for which
//     errors.Is(err, ErrNotFound) and errors.Is(err, fs.ErrNotExist) hold.
//   - Returned signers answer Public with *rsa.PublicKey or *ecdsa.PublicKey
//     and accept crypto.SHA256/384/512 digests; RSA signers sign PKCS #1 v1.5,
//     or PSS when opts is *rsa.PSSOptions. They stay usable while the store
//     is open, even if the key is deleted afterwards.
//   - Errors say what failed and why; they never carry private key material.
//   - Methods taking a ctx give up when it is done, before starting work that
//     cannot be interrupted.
//   - A Store is safe for concurrent use.
type Store interface {
	// Generate creates the key name as described by spec and returns a
	// handle on it. The key is durable when Generate returns.
	Generate(ctx context.Context, name string, spec KeySpec) (crypto.Signer, error)
	// Signer returns a handle on the existing key name.
	Signer(ctx context.Context, name string) (crypto.Signer, error)
	// Public returns the public half of the key name.
	Public(name string) (crypto.PublicKey, error)
	// Delete destroys the key name.
	Delete(name string) error
	// Names lists the keys held, sorted.
	Names() ([]string, error)
	// Kind names the backend as the YANG key-storage leaf does: "file" or
	// "tpm".
	Kind() string
}

// Errors shared by every Store. Test with errors.Is.
var (
	// ErrNotFound: no key of that name. It matches fs.ErrNotExist too.
	ErrNotFound = fmt.Errorf("no such key: %w", fs.ErrNotExist)
	// ErrExists: a key of that name exists; keys are never overwritten. It
	// matches fs.ErrExist too.
	ErrExists = fmt.Errorf("key exists: %w", fs.ErrExist)
	// ErrUnsupported: a valid KeySpec (or signature option) this backend
	// cannot serve, such as RSA 4096 on a TPM that only holds 2048 and 3072.
	ErrUnsupported = errors.New("not supported by this key store")
	// ErrInvalidName: a key name outside [A-Za-z0-9._-]{1,64}.
	ErrInvalidName = errors.New("invalid key name")
	// ErrInvalidSpec: a KeySpec outside the algorithms the agent offers.
	ErrInvalidSpec = errors.New("invalid key specification")
)

// Algorithms of KeySpec.Algorithm.
const (
	AlgorithmRSA     = "rsa"
	AlgorithmECC     = "ecc"
	AlgorithmEd25519 = "ed25519"
)

// Curves of KeySpec.Curve (the YANG ecc-curve enumeration).
const (
	CurveP256 = "secp256r1"
	CurveP384 = "secp384r1"
	CurveP521 = "secp521r1"
)

// RSA key sizes the agent offers: MinRSABits to MaxRSABits in steps of
// RSABitsStep.
const (
	MinRSABits  = 2048
	MaxRSABits  = 4096
	RSABitsStep = 256
)

// MaxNameLen is the longest key name.
const MaxNameLen = api.MaxNameLen

// KeySpec describes a key to generate, as the generate-private-key RPC does.
type KeySpec struct {
	Algorithm string // AlgorithmRSA, AlgorithmECC or AlgorithmEd25519
	RSABits   int    // for rsa: 2048..4096, a multiple of 256
	Curve     string // for ecc: secp256r1, secp384r1 or secp521r1
}

// Validate reports, in words an operator can act on, why the spec is not a
// key the agent offers. The field of the other algorithm is ignored. Errors
// wrap ErrInvalidSpec.
func (s KeySpec) Validate() error {
	switch s.Algorithm {
	case AlgorithmRSA:
		if s.RSABits < MinRSABits || s.RSABits > MaxRSABits || s.RSABits%RSABitsStep != 0 {
			return fmt.Errorf("%w: rsa-key-size %d: must be %d to %d in steps of %d",
				ErrInvalidSpec, s.RSABits, MinRSABits, MaxRSABits, RSABitsStep)
		}
	case AlgorithmECC:
		if s.Curve == "" {
			return fmt.Errorf("%w: ecc-curve is required for algorithm ecc (%s, %s or %s)",
				ErrInvalidSpec, CurveP256, CurveP384, CurveP521)
		}
		if _, err := s.EllipticCurve(); err != nil {
			return err
		}
	case AlgorithmEd25519:
	case "":
		return fmt.Errorf("%w: algorithm is required (rsa, ecc or ed25519)", ErrInvalidSpec)
	default:
		return fmt.Errorf("%w: algorithm %q: must be rsa, ecc or ed25519", ErrInvalidSpec, s.Algorithm)
	}
	return nil
}

// EllipticCurve returns the curve named by s.Curve.
func (s KeySpec) EllipticCurve() (elliptic.Curve, error) {
	switch s.Curve {
	case CurveP256:
		return elliptic.P256(), nil
	case CurveP384:
		return elliptic.P384(), nil
	case CurveP521:
		return elliptic.P521(), nil
	}
	return nil, fmt.Errorf("%w: ecc-curve %q: must be %s, %s or %s",
		ErrInvalidSpec, s.Curve, CurveP256, CurveP384, CurveP521)
}

// String names the key type as the certificate state's key-algorithm leaf
// does: "rsa-2048", "ecc-secp256r1".
func (s KeySpec) String() string {
	switch s.Algorithm {
	case AlgorithmRSA:
		return fmt.Sprintf("rsa-%d", s.RSABits)
	case AlgorithmEd25519:
		return AlgorithmEd25519
	}
	return s.Algorithm + "-" + s.Curve
}

// SpecOf describes an existing public key. Keys the agent does not offer
// (other curves, other RSA sizes, other algorithms) wrap ErrUnsupported.
func SpecOf(pub crypto.PublicKey) (KeySpec, error) {
	var s KeySpec
	switch k := pub.(type) {
	case *rsa.PublicKey:
		s = KeySpec{Algorithm: AlgorithmRSA, RSABits: k.N.BitLen()}
	case *ecdsa.PublicKey:
		s = KeySpec{Algorithm: AlgorithmECC}
		switch k.Curve {
		case elliptic.P256():
			s.Curve = CurveP256
		case elliptic.P384():
			s.Curve = CurveP384
		case elliptic.P521():
			s.Curve = CurveP521
		default:
			return KeySpec{}, fmt.Errorf("%w: ECDSA curve %s", ErrUnsupported, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		s = KeySpec{Algorithm: AlgorithmEd25519}
	default:
		return KeySpec{}, fmt.Errorf("%w: public key type %T", ErrUnsupported, pub)
	}
	if err := s.Validate(); err != nil {
		return KeySpec{}, fmt.Errorf("%w: %s key", ErrUnsupported, s)
	}
	return s, nil
}

// ValidateName accepts the names api.CheckName does: 1 to 64 characters
// of [A-Za-z0-9._-], except "." and "..", so a name is always a single,
// harmless path element. Errors wrap ErrInvalidName.
func ValidateName(name string) error {
	if err := api.CheckName("key name", name, MaxNameLen); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	return nil
}
