package tpm

import (
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-tpm/tpm2"
)

// Key files hold the TPM-wrapped key in the "TSS2 PRIVATE KEY" layout of
// tpm2-tss-engine and the tpm2-openssl provider: the TPM2B_PUBLIC and the
// TPM2B_PRIVATE that TPM2_Create returned, parent TPM_RH_OWNER meaning the
// TCG reference ECC P-256 SRK (loading these files with those tools has not
// been tested). The private part is encrypted and
// integrity-protected by the TPM under the SRK: only this TPM can load it,
// and nothing (this file included) can reveal the key.
const pemType = "TSS2 PRIVATE KEY"

// oidLoadableKey is id-loadablekey.
var oidLoadableKey = asn1.ObjectIdentifier{2, 23, 133, 10, 1, 3}

// parentOwner is TPM_RH_OWNER: the parent is the owner-hierarchy SRK.
const parentOwner = 0x40000001

type tpmKeyASN1 struct {
	Type      asn1.ObjectIdentifier
	EmptyAuth bool `asn1:"explicit,tag:0,optional"`
	Parent    int64
	Pubkey    []byte
	Privkey   []byte
}

// blob is a key as saved and loaded.
type blob struct {
	public  tpm2.TPM2BPublic
	private tpm2.TPM2BPrivate
}

func (b *blob) marshal() ([]byte, error) {
	der, err := asn1.Marshal(tpmKeyASN1{
		Type:      oidLoadableKey,
		EmptyAuth: true,
		Parent:    parentOwner,
		Pubkey:    tpm2.Marshal(b.public),
		Privkey:   tpm2.Marshal(b.private),
	})
	if err != nil {
		return nil, fmt.Errorf("encode key blob: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

var errBadBlob = errors.New("not a TPM key file")

func parseBlob(data []byte) (*blob, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemType || strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("%w: want exactly one PEM %q block", errBadBlob, pemType)
	}
	var k tpmKeyASN1
	if tail, err := asn1.Unmarshal(block.Bytes, &k); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadBlob, err)
	} else if len(tail) != 0 {
		return nil, fmt.Errorf("%w: trailing data after the key", errBadBlob)
	}
	if !k.Type.Equal(oidLoadableKey) {
		return nil, fmt.Errorf("%w: type %v is not a loadable key", errBadBlob, k.Type)
	}
	if k.Parent != parentOwner {
		return nil, fmt.Errorf("%w: parent %#x is not the owner hierarchy", errBadBlob, k.Parent)
	}
	if !k.EmptyAuth {
		return nil, fmt.Errorf("%w: keys with a password are not supported", errBadBlob)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](k.Pubkey)
	if err != nil {
		return nil, fmt.Errorf("%w: public area: %w", errBadBlob, err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](k.Privkey)
	if err != nil {
		return nil, fmt.Errorf("%w: private area: %w", errBadBlob, err)
	}
	return &blob{public: *pub, private: *priv}, nil
}
