package agent

import (
	"errors"
	"testing"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/gen"
)

// FuzzApply feeds arbitrary JSON values at arbitrary paths to Tx.Apply
// (the value checks, the key screening, ygot): it must never panic, and
// every refusal is a *PathError of a known kind whose text stays bounded
// whatever the size of the value.
func FuzzApply(f *testing.F) {
	for _, s := range []struct{ path, value string }{
		{"/authority/router[name=r1]/peer-validation", `"yes"`},
		{"/authority/router[name=r1]", `{"peer-validation":true,"peer":[{"name":"p","identifier":"x"}]}`},
		{"/authority", `{"router":{"r1":{}}}`},
		{"/", `{"pki-authority:authority":{"certificate-revocation-list":[{"url":"http://x/a.crl","polling-interval":0}]}}`},
		{"/authority/certificate-revocation-list[url=http://x/a.crl]/polling-interval", `1e3`},
		{"/authority/trusted-ca-certificate[name=t]", `{"content":"-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"}`},
		{"/authority/router[name=r1]", `null`},
	} {
		f.Add(s.path, []byte(s.value))
	}
	f.Fuzz(func(t *testing.T, path string, value []byte) {
		p, err := ygot.StringToStructuredPath(path)
		if err != nil {
			return
		}
		tx := newTx(&gen.Device{})
		for _, op := range []Op{OpMerge, OpReplace} {
			err := tx.Apply(Edit{Op: op, Path: p, Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: value}}})
			if err == nil {
				if verr := tx.Validate(); verr != nil {
					err = verr
				} else {
					continue
				}
			}
			var pe *api.PathError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *PathError", err, err)
			}
			if !errors.Is(err, api.ErrInvalid) && !errors.Is(err, ErrUnknownPath) && !errors.Is(err, ErrReadOnly) && !errors.Is(err, api.ErrExists) && !errors.Is(err, api.ErrMissing) {
				t.Fatalf("error of no known kind: %v", err)
			}
			if n := len(err.Error()); n > 1200+4*len(path) {
				t.Fatalf("error is %d bytes for a %d-byte value", n, len(value))
			}
		}
	})
}
