package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	pkyang "github.com/pkiagent/pkiagent/yang"
)

// rpcInput converts the XML input of rpc e to RFC 7951 JSON, checking
// names, types and mandatory leaves against the schema.
func rpcInput(op *node, e *yang.Entry) ([]byte, error) {
	in := e.RPC.Input
	obj := map[string]any{}
	root := []*gnmi.PathElem{{Name: e.Name}}
	if in != nil {
		wrapped := &node{name: op.name, children: op.children}
		v, err := toJSON(wrapped, in, root, nil)
		if err != nil {
			return nil, err
		}
		obj = v.(map[string]any)
		for _, c := range sortedChildren(in) {
			if _, ok := obj[c.Name]; !ok && c.Mandatory == yang.TSTrue {
				path := appendElem(root, &gnmi.PathElem{Name: c.Name})
				return nil, ncxml.MissingElement(ncxml.Application, c.Name,
					fmt.Sprintf("rpc %s needs <%s>", e.Name, c.Name)).WithPath(xpathOf(path), pathNS)
			}
		}
	} else if len(op.children) > 0 {
		return nil, ncxml.UnknownElement(ncxml.Application, op.children[0].name.Local, fmt.Sprintf("rpc %s takes no input", e.Name))
	}
	return json.Marshal(obj)
}

// agentRPC runs an rpc of module pki-authority through agent.InvokeRPC, or
// of module pki-agent-system through the store's InvokeSystemRPC, with the
// session's user and role.
func (h *Handler) agentRPC(ctx context.Context, s *netconf.Session, op *node) ncxml.Reply {
	e := schemaRoot().Dir[op.name.Local]
	if e == nil || e.RPC == nil {
		return ncxml.Error(ncxml.OperationNotSupported(ncxml.Protocol, fmt.Sprintf("rpc %s is not in namespace %q", op.name.Local, op.name.Space)))
	}
	input, err := rpcInput(op, e)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	caller := api.Caller{User: s.Username(), Role: s.Role()}
	var out []byte
	if op.name.Space == pkyang.System.Namespace {
		out, err = h.store.InvokeSystemRPC(ctx, caller, owner(s), e.Name, input)
	} else {
		if h.pki == nil {
			return ncxml.Error(ncxml.OperationFailed(ncxml.Application, fmt.Sprintf("rpc %s: the PKI engine is not running on this agent", e.Name)))
		}
		out, err = agent.InvokeRPC(ctx, h.pki, caller, e.Name, input)
	}
	if err != nil {
		if _, named := errors.AsType[*api.InputError](err); !named && errors.Is(err, api.ErrInvalid) {
			// Invalid input that names no leaf: the error-path is the rpc.
			err = &api.InputError{RPC: e.Name, Err: err}
		}
		return ncxml.Error(h.toRPCError(err, "rpc "+e.Name))
	}
	obj, err := decodeJSON(out)
	if err != nil || e.RPC.Output == nil {
		return ncxml.OK()
	}
	return ncxml.Output(marshalNodes(fromJSON(e.RPC.Output, op.name.Space, obj), ""))
}

var (
	yangIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)
	revisionDate   = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// getSchema serves RFC 6022 get-schema for the embedded YANG modules.
func (h *Handler) getSchema(op *node) ncxml.Reply {
	ps, err := params(op, p("identifier"), p("version"), p("format"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	id := ps["identifier"]
	if id == nil {
		return ncxml.Error(ncxml.MissingElement(ncxml.Protocol, "identifier", "get-schema needs <identifier>"))
	}
	if f := ps["format"]; f != nil {
		v := strings.TrimSpace(f.text)
		if i := strings.IndexByte(v, ':'); i >= 0 {
			v = v[i+1:]
		}
		if v != "yang" {
			return ncxml.Error(ncxml.InvalidValue(ncxml.Protocol, fmt.Sprintf("schema format %q is not served; use yang", strings.TrimSpace(f.text))))
		}
	}
	version := ""
	if v := ps["version"]; v != nil {
		version = strings.TrimSpace(v.text)
	}
	name := strings.TrimSpace(id.text)
	// Checked before they are quoted back: bounded and printable.
	if !yangIdentifier.MatchString(name) {
		return ncxml.Error(ncxml.InvalidValue(ncxml.Application,
			"get-schema: <identifier> is not a YANG module name (a letter or _, then up to 63 letters, digits, _ - .)"))
	}
	if version != "" && !revisionDate.MatchString(version) {
		return ncxml.Error(ncxml.InvalidValue(ncxml.Application, "get-schema: <version> is not a revision date YYYY-MM-DD"))
	}
	src, err := pkyang.Source(name, version)
	if err != nil {
		return ncxml.Error(ncxml.InvalidValue(ncxml.Application, fmt.Sprintf("get-schema: %v", err)))
	}
	body := append([]byte(`<data xmlns="`+monNS+`">`), ncxml.AppendText(nil, src)...)
	return ncxml.Output(append(body, "</data>"...))
}
