package tpm

import (
	"crypto"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/pkiagent/pkiagent/pki/keystore"
)

// srkTemplate is the parent of every key: the TCG reference ECC P-256
// storage key of the owner hierarchy. It is deterministic, so recreating it
// yields the same key and the saved blobs load under it again.
var srkTemplate = tpm2.ECCSRKTemplate

// keyAttributes make a signing key that the TPM generated and never lets go:
// fixedTPM and fixedParent forbid duplication, sensitiveDataOrigin means the
// TPM made the secret; no decrypt, not restricted (it signs external
// digests). The key has an empty password (userWithAuth) and is exempt from
// dictionary-attack lockout.
var keyAttributes = tpm2.TPMAObject{
	FixedTPM:            true,
	FixedParent:         true,
	SensitiveDataOrigin: true,
	UserWithAuth:        true,
	NoDA:                true,
	SignEncrypt:         true,
}

var tpmCurves = map[string]tpm2.TPMECCCurve{
	keystore.CurveP256: tpm2.TPMECCNistP256,
	keystore.CurveP384: tpm2.TPMECCNistP384,
	keystore.CurveP521: tpm2.TPMECCNistP521,
}

// parmsFor returns the algorithm parameters of spec, which must be valid.
// The signature scheme is left NULL so that each Sign picks ECDSA, RSASSA or
// RSAPSS and the hash.
func parmsFor(spec keystore.KeySpec) (tpm2.TPMIAlgPublic, tpm2.TPMUPublicParms, tpm2.TPMUPublicID, error) {
	nullSym := tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull}
	switch spec.Algorithm {
	case keystore.AlgorithmRSA:
		return tpm2.TPMAlgRSA,
			tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: nullSym,
				Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
				KeyBits:   tpm2.TPMKeyBits(spec.RSABits),
			}),
			tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{}),
			nil
	case keystore.AlgorithmECC:
		curve, ok := tpmCurves[spec.Curve]
		if !ok {
			break
		}
		return tpm2.TPMAlgECC,
			tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Symmetric: nullSym,
				Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
				CurveID:   curve,
				KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
			}),
			tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
			nil
	}
	if spec.Algorithm == keystore.AlgorithmEd25519 {
		return 0, tpm2.TPMUPublicParms{}, tpm2.TPMUPublicID{}, fmt.Errorf("%w: a TPM 2.0 cannot hold Ed25519 keys (TPM2_ECC_CURVE has no Edwards curve); use key-storage file or an ecc key", keystore.ErrUnsupported)
	}
	return 0, tpm2.TPMUPublicParms{}, tpm2.TPMUPublicID{}, fmt.Errorf("%w: %s", keystore.ErrInvalidSpec, spec)
}

// keyTemplate is the public template of a signing key for spec.
func keyTemplate(spec keystore.KeySpec) (tpm2.TPMTPublic, error) {
	typ, parms, unique, err := parmsFor(spec)
	if err != nil {
		return tpm2.TPMTPublic{}, err
	}
	return tpm2.TPMTPublic{
		Type:             typ,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: keyAttributes,
		Parameters:       parms,
		Unique:           unique,
	}, nil
}

// tpmHash maps the digest algorithms signers accept.
func tpmHash(h crypto.Hash) (tpm2.TPMIAlgHash, bool) {
	switch h {
	case crypto.SHA256:
		return tpm2.TPMAlgSHA256, true
	case crypto.SHA384:
		return tpm2.TPMAlgSHA384, true
	case crypto.SHA512:
		return tpm2.TPMAlgSHA512, true
	}
	return 0, false
}
