package gnmi

import (
	"errors"
	"regexp"
	"testing"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"

	yangmod "github.com/pkiagent/pkiagent/yang"
)

// RFC 7951 6.9: a leaf of type empty is [null]. Our model has none, so a
// schema with one is built here: [null] is its value, null is not, and
// [null] anywhere else is still refused.
func TestNullsAtEmptyLeaf(t *testing.T) {
	flag := &yang.Entry{Name: "flag", Kind: yang.LeafEntry, Type: &yang.YangType{Kind: yang.Yempty}}
	name := &yang.Entry{Name: "name", Kind: yang.LeafEntry, Type: &yang.YangType{Kind: yang.Ystring}}
	c := &yang.Entry{Name: "c", Kind: yang.DirectoryEntry, Dir: map[string]*yang.Entry{"flag": flag, "name": name}}
	at := []*gnmi.PathElem{{Name: "c"}}
	for _, tc := range []struct {
		desc string
		v    any
		ok   bool
	}{
		{"empty leaf [null]", map[string]any{"flag": []any{nil}}, true},
		{"empty leaf null", map[string]any{"flag": nil}, false},
		{"string leaf [null]", map[string]any{"name": []any{nil}}, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := nullsAt(c, at, tc.v)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, errValue) {
				t.Errorf("got %v; want ok=%v", err, tc.ok)
			}
		})
	}
}

// fillDefaults relies on the model having no presence container: a
// presence container holding a defaulted leaf would be made up.
func TestNoPresenceContainers(t *testing.T) {
	src, err := yangmod.Source(yangmod.Main.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^\s*presence\s`).FindString(src); m != "" {
		t.Errorf("%s has a presence container (%q): fillDefaults would make it up", yangmod.Main.Name, m)
	}
}
