package ops

import (
	"sort"
	"strings"

	"github.com/openconfig/gnmi/proto/gnmi"

	pkyang "github.com/pkiagent/pkiagent/yang"
)

// pathNS binds the prefixes used in error-path expressions.
var pathNS = func() map[string]string {
	m := map[string]string{}
	for _, mod := range pkyang.Modules {
		if !mod.ImportOnly {
			m[mod.Prefix] = mod.Namespace
		}
	}
	return m
}()

// xpathOf renders elems as the error-path of RFC 6241 section 4.3, e.g.
// /pka:authority/pka:trusted-ca-certificate[pka:name='x']/pka:content.
func xpathOf(elems []*gnmi.PathElem) string {
	if len(elems) == 0 {
		return "/"
	}
	p := pkyang.Main.Prefix + ":"
	if e := schemaRoot().Dir[elems[0].GetName()]; e != nil {
		if m, ok := moduleOf(nsOf(e)); ok {
			p = m.Prefix + ":"
		}
	}
	var b strings.Builder
	for _, e := range elems {
		b.WriteByte('/')
		b.WriteString(p)
		b.WriteString(e.Name)
		ks := make([]string, 0, len(e.Key))
		for k := range e.Key {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			b.WriteString("[" + p + k + "=" + xpathLiteral(e.Key[k]) + "]")
		}
	}
	return b.String()
}

// xpathLiteral quotes s as an XPath 1.0 string literal.
func xpathLiteral(s string) string {
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	if !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	parts := strings.Split(s, "'")
	return "concat('" + strings.Join(parts, `', "'", '`) + "')"
}
