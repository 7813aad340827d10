package pki

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
)

// maxDNLength bounds a configured distinguished name.
const maxDNLength = 1024

// dnAttributes are the attribute names a configured DN may use (RFC 4514
// names, and emailAddress as OpenSSL prints it).
var dnAttributes = map[string]asn1.ObjectIdentifier{
	"C":            {2, 5, 4, 6},
	"ST":           {2, 5, 4, 8},
	"L":            {2, 5, 4, 7},
	"O":            {2, 5, 4, 10},
	"OU":           {2, 5, 4, 11},
	"CN":           {2, 5, 4, 3},
	"SERIALNUMBER": {2, 5, 4, 5},
	"DC":           {0, 9, 2342, 19200300, 100, 1, 25},
	"EMAILADDRESS": {1, 2, 840, 113549, 1, 9, 1},
}

// parseDN reads a distinguished name written as SR OS and RFC 4514 do,
// most significant first: "C=NL,ST=ZH,O=Nokia,CN=sr" (a comma or a plus
// inside a value is escaped with a backslash). The OpenSSL form
// "/C=NL/O=Nokia/CN=sr" is accepted too. Errors never quote the value.
func parseDN(s string) (pkix.Name, error) {
	var name pkix.Name
	if len(s) > maxDNLength {
		return name, fmt.Errorf("a distinguished name is at most %d characters", maxDNLength)
	}
	sep := byte(',')
	if strings.HasPrefix(s, "/") {
		s, sep = s[1:], '/'
	}
	var rdns pkix.RDNSequence
	var cur strings.Builder
	var parts []string
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '\\':
			return name, errors.New("a distinguished name ends in a lone backslash")
		case c == sep:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return name, fmt.Errorf("attribute %d of the distinguished name is not NAME=VALUE", i+1)
		}
		oid, known := dnAttributes[strings.ToUpper(k)]
		if !known {
			return name, fmt.Errorf("attribute %d of the distinguished name has an unknown type (use C, ST, L, O, OU, CN, serialNumber, DC or emailAddress)", i+1)
		}
		if len(v) > 256 {
			return name, fmt.Errorf("attribute %d of the distinguished name is longer than 256 characters", i+1)
		}
		if strings.EqualFold(k, "C") && len(v) != 2 {
			return name, fmt.Errorf("attribute %d of the distinguished name: C takes a two-letter country code", i+1)
		}
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}})
	}
	name.FillFromRDNSequence(&rdns)
	return name, nil
}
