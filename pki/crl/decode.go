package crl

import (
	"bytes"
	"encoding/pem"
	"fmt"
)

// pemTypes are the PEM block types that carry a CRL.
var pemTypes = map[string]bool{"X509 CRL": true, "CRL": true}

// Decode returns the DER of a CRL given as DER or as PEM. DER is recognised
// by its leading SEQUENCE tag; otherwise the first "X509 CRL" (or "CRL")
// PEM block is used and other blocks are skipped. Decode does not check the
// DER itself: Parse does. The result may alias data.
func Decode(data []byte) ([]byte, error) {
	if len(data) > 0 && data[0] == 0x30 {
		return data, nil
	}
	rest := data
	if i := bytes.Index(rest, []byte("-----BEGIN")); i < 0 {
		return nil, fmt.Errorf("%w: the body starts with neither a DER SEQUENCE nor a PEM header", ErrNotCRL)
	}
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%w: no PEM block of type X509 CRL", ErrNotCRL)
		}
		if pemTypes[b.Type] {
			if len(b.Bytes) == 0 || b.Bytes[0] != 0x30 {
				return nil, fmt.Errorf("%w: the X509 CRL PEM block does not hold DER", ErrNotCRL)
			}
			return b.Bytes, nil
		}
	}
}
