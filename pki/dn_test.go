package pki

import (
	"strings"
	"testing"
)

func TestParseDN(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "C=NL,ST=ZH,O=Nokia,CN=sr", want: "CN=sr,O=Nokia,ST=ZH,C=NL"},
		{in: "/CN=router1/O=Lab", want: "CN=router1,O=Lab"},
		{in: `CN=a\,b`, want: `CN=a\,b`},
		{in: "CN=", err: "attribute 1"},
		{in: "X=1", err: "unknown type"},
		{in: "C=NLD", err: "two-letter"},
		{in: `CN=x\`, err: "backslash"},
		{in: strings.Repeat("a", 2000), err: "at most"},
	} {
		n, err := parseDN(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want an error with %q", tc.in, err, tc.err)
			}
			if err != nil && len(tc.in) > 3 && strings.Contains(err.Error(), tc.in) {
				t.Errorf("%q: the error quotes the value: %v", tc.in, err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case n.String() != tc.want:
			t.Errorf("%q: got %s, want %s", tc.in, n, tc.want)
		}
	}
}

func FuzzParseDN(f *testing.F) {
	for _, s := range []string{"C=NL,ST=ZH,O=Nokia,CN=sr", "/CN=a/O=b", `CN=a\,b+c`, "emailAddress=a@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseDN(s)
		if err != nil {
			return
		}
		_ = n.String()
	})
}
