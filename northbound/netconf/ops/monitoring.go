package ops

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	pkyang "github.com/pkiagent/pkiagent/yang"
)

// Namespaces of the state <get> reports besides pki-authority.
const (
	dsNS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
	// manageNS is the namespace of module nc-notifications (RFC 5277
	// section 4: /netconf/streams, replayComplete, notificationComplete).
	manageNS = "urn:ietf:params:xml:ns:netmod:notification"
)

// moduleSetID identifies the set of modules served, with their features
// (RFC 7895 module-set-id, RFC 8525 content-id).
func moduleSetID() string {
	h := sha256.New()
	for _, m := range pkyang.Served() {
		fmt.Fprintf(h, "%s@%s %t %s\n", m.Name, m.Revision, m.ImportOnly, strings.Join(m.Features, ","))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// moduleCapability is the hello capability of module m (RFC 6020 5.6.4),
// with the features it supports, which clients such as libnetconf2 enable
// from it.
func moduleCapability(m pkyang.Module) string {
	c := m.Namespace + "?module=" + m.Name + "&revision=" + m.Revision
	if len(m.Features) > 0 {
		c += "&features=" + strings.Join(m.Features, ",")
	}
	return c
}

// Capabilities are the capabilities to advertise (after base:1.0 and
// base:1.1, which the server adds): the protocol capabilities, the YANG
// library (RFC 8525 first, as libyang 2 clients hold that revision, then
// the RFC 7950 one for older clients) and every implemented module.
func Capabilities() []string {
	caps := []string{
		"urn:ietf:params:netconf:capability:writable-running:1.0",
		"urn:ietf:params:netconf:capability:candidate:1.0",
		"urn:ietf:params:netconf:capability:confirmed-commit:1.1",
		"urn:ietf:params:netconf:capability:validate:1.1",
		"urn:ietf:params:netconf:capability:rollback-on-error:1.0",
		"urn:ietf:params:netconf:capability:notification:1.0",
		"urn:ietf:params:netconf:capability:interleave:1.0",
		"urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit&also-supported=report-all,report-all-tagged,trim",
		"urn:ietf:params:netconf:capability:yang-library:1.1?revision=" + yangLibrary().Revision + "&content-id=" + moduleSetID(),
		"urn:ietf:params:netconf:capability:yang-library:1.0?revision=" + yangLibrary().Revision + "&module-set-id=" + moduleSetID(),
	}
	for _, m := range pkyang.Served() {
		if !m.ImportOnly {
			caps = append(caps, moduleCapability(m))
		}
	}
	return caps
}

func yangLibrary() pkyang.Module {
	for _, m := range pkyang.NETCONF {
		if m.Name == "ietf-yang-library" {
			return m
		}
	}
	panic("yang: ietf-yang-library is not listed")
}

// lockRecord is when a NETCONF session took a datastore lock, for
// /netconf-state/datastores (the store keeps only the holder).
type lockRecord struct {
	owner api.Owner
	since time.Time
}

func leaf(ns, name, text string) *node { return &node{name: xmlName(ns, name), text: text} }

func count(ns, name string, n uint64) *node { return leaf(ns, name, strconv.FormatUint(n, 10)) }

func dateTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// monitoringNodes are the protocol state <get> reports beside the data
// model: ietf-netconf-monitoring /netconf-state (RFC 6022), the YANG
// library (RFC 8525 /yang-library and the RFC 7895 /modules-state it
// keeps) and the RFC 5277 stream list /netconf/streams.
func (h *Handler) monitoringNodes(s *netconf.Session) []*node {
	return []*node{h.netconfState(s), yangLibraryNode(), modulesStateNode(), h.streamsNode()}
}

func (h *Handler) netconfState(s *netconf.Session) *node {
	caps := &node{name: xmlName(monNS, "capabilities")}
	for _, c := range s.ServerCapabilities() {
		caps.children = append(caps.children, leaf(monNS, "capability", c))
	}

	stores := &node{name: xmlName(monNS, "datastores")}
	for _, ds := range []agent.Datastore{agent.Running, agent.Candidate} {
		d := &node{name: xmlName(monNS, "datastore"), keys: []string{"name"}, children: []*node{leaf(monNS, "name", ds.String())}}
		if holder, ok := h.store.LockHolder(ds); ok {
			h.mu.Lock()
			rec, known := h.locks[ds]
			h.mu.Unlock()
			since := h.started
			if known && rec.owner == holder {
				since = rec.since
			}
			d.children = append(d.children, &node{name: xmlName(monNS, "locks"), children: []*node{{
				name: xmlName(monNS, "global-lock"), children: []*node{
					count(monNS, "locked-by-session", uint64(holder.Session)),
					leaf(monNS, "locked-time", dateTime(since)),
				}}}})
		}
		stores.children = append(stores.children, d)
	}

	schemas := &node{name: xmlName(monNS, "schemas")}
	for _, m := range pkyang.Served() {
		schemas.children = append(schemas.children, &node{name: xmlName(monNS, "schema"), keys: []string{"identifier", "version", "format"},
			nsDecl: map[string]string{"ncm": monNS}, children: []*node{
				leaf(monNS, "identifier", m.Name), leaf(monNS, "version", m.Revision), leaf(monNS, "format", "ncm:yang"),
				leaf(monNS, "namespace", m.Namespace), leaf(monNS, "location", "NETCONF"),
			}})
	}

	sessions := &node{name: xmlName(monNS, "sessions")}
	running := s.Server().Sessions()
	slices.SortFunc(running, func(a, b *netconf.Session) int { return int(a.ID()) - int(b.ID()) })
	for _, rs := range running {
		c := rs.Counters()
		e := &node{name: xmlName(monNS, "session"), keys: []string{"session-id"}, nsDecl: map[string]string{"ncm": monNS}, children: []*node{
			count(monNS, "session-id", uint64(rs.ID())),
			leaf(monNS, "transport", "ncm:netconf-ssh"),
			leaf(monNS, "username", rs.Username()),
		}}
		if host, _, err := splitHost(rs); err == nil {
			e.children = append(e.children, leaf(monNS, "source-host", host))
		}
		e.children = append(e.children,
			leaf(monNS, "login-time", dateTime(rs.LoginTime())),
			count(monNS, "in-rpcs", c.InRPCs),
			count(monNS, "in-bad-rpcs", c.InBadRPCs),
			count(monNS, "out-rpc-errors", c.OutRPCErrors),
			count(monNS, "out-notifications", c.OutNotifications))
		sessions.children = append(sessions.children, e)
	}

	st := s.Server().Statistics()
	stats := &node{name: xmlName(monNS, "statistics"), children: []*node{
		leaf(monNS, "netconf-start-time", dateTime(st.StartTime)),
		count(monNS, "in-bad-hellos", st.InBadHellos),
		count(monNS, "in-sessions", st.InSessions),
		count(monNS, "dropped-sessions", st.DroppedSessions),
		count(monNS, "in-rpcs", st.InRPCs),
		count(monNS, "in-bad-rpcs", st.InBadRPCs),
		count(monNS, "out-rpc-errors", st.OutRPCErrors),
		count(monNS, "out-notifications", st.OutNotifications),
	}}
	return &node{name: xmlName(monNS, "netconf-state"), children: []*node{caps, stores, schemas, sessions, stats}}
}

// yangLibraryNode is RFC 8525 /yang-library: one module set, used by one
// schema that running and candidate share.
func yangLibraryNode() *node {
	set := &node{name: xmlName(ylibNS, "module-set"), keys: []string{"name"}, children: []*node{leaf(ylibNS, "name", "complete")}}
	var imports []*node
	for _, m := range pkyang.Served() {
		if m.ImportOnly {
			imports = append(imports, &node{name: xmlName(ylibNS, "import-only-module"), keys: []string{"name", "revision"}, children: []*node{
				leaf(ylibNS, "name", m.Name), leaf(ylibNS, "revision", m.Revision), leaf(ylibNS, "namespace", m.Namespace),
			}})
			continue
		}
		mod := &node{name: xmlName(ylibNS, "module"), keys: []string{"name"}, children: []*node{
			leaf(ylibNS, "name", m.Name), leaf(ylibNS, "revision", m.Revision), leaf(ylibNS, "namespace", m.Namespace),
		}}
		for _, f := range m.Features {
			mod.children = append(mod.children, leaf(ylibNS, "feature", f))
		}
		set.children = append(set.children, mod)
	}
	set.children = append(set.children, imports...)
	lib := &node{name: xmlName(ylibNS, "yang-library"), children: []*node{set,
		{name: xmlName(ylibNS, "schema"), keys: []string{"name"}, children: []*node{leaf(ylibNS, "name", "complete"), leaf(ylibNS, "module-set", "complete")}},
	}}
	for _, ds := range []string{"running", "candidate"} {
		lib.children = append(lib.children, &node{name: xmlName(ylibNS, "datastore"), keys: []string{"name"},
			nsDecl: map[string]string{"ds": dsNS}, children: []*node{leaf(ylibNS, "name", "ds:"+ds), leaf(ylibNS, "schema", "complete")}})
	}
	lib.children = append(lib.children, leaf(ylibNS, "content-id", moduleSetID()))
	return lib
}

// modulesStateNode is RFC 7895 /modules-state (deprecated by RFC 8525,
// which keeps it; libnetconf2 clients read it).
func modulesStateNode() *node {
	ms := &node{name: xmlName(ylibNS, "modules-state"), children: []*node{leaf(ylibNS, "module-set-id", moduleSetID())}}
	for _, m := range pkyang.Served() {
		mod := &node{name: xmlName(ylibNS, "module"), keys: []string{"name", "revision"}, children: []*node{
			leaf(ylibNS, "name", m.Name), leaf(ylibNS, "revision", m.Revision), leaf(ylibNS, "namespace", m.Namespace),
		}}
		for _, f := range m.Features {
			mod.children = append(mod.children, leaf(ylibNS, "feature", f))
		}
		conf := "implement"
		if m.ImportOnly {
			conf = "import"
		}
		mod.children = append(mod.children, leaf(ylibNS, "conformance-type", conf))
		ms.children = append(ms.children, mod)
	}
	return ms
}

// streamsNode is the RFC 5277 stream list (module nc-notifications): the
// one stream NETCONF, replayed from the buffer made when the handler was.
func (h *Handler) streamsNode() *node {
	return &node{name: xmlName(manageNS, "netconf"), children: []*node{{name: xmlName(manageNS, "streams"), children: []*node{{
		name: xmlName(manageNS, "stream"), keys: []string{"name"}, children: []*node{
			leaf(manageNS, "name", "NETCONF"),
			leaf(manageNS, "description", "the default NETCONF event stream: commits, sessions, confirmed commits, alarms, CRL updates and certificate events"),
			leaf(manageNS, "replaySupport", "true"),
			leaf(manageNS, "replayLogCreationTime", dateTime(h.started)),
		}}}}}}
}
