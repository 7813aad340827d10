package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

// treeNodes renders a datastore tree as XML elements in schema order.
func treeNodes(root *gen.Device) ([]*node, error) {
	raw, err := agent.EmitJSON(root)
	if err != nil {
		return nil, fmt.Errorf("render datastore: %w", err)
	}
	obj, err := decodeJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("render datastore: %w", err)
	}
	return fromJSON(schemaRoot(), NS, obj), nil
}

// renderCache keeps the elements of the last datastore trees rendered.
// Datastore trees are immutable (a commit makes a new root), and filters
// and with-defaults build new elements rather than change these, so a
// get-config of an unchanged datastore skips the rendering.
type renderCache struct {
	mu    sync.Mutex
	trees map[*gen.Device][]*node // at most renderCacheSize
}

// renderCacheSize covers running and candidate.
const renderCacheSize = 2

func (c *renderCache) nodes(root *gen.Device) ([]*node, error) {
	c.mu.Lock()
	n, ok := c.trees[root]
	c.mu.Unlock()
	if ok {
		return n, nil
	}
	n, err := treeNodes(root)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.trees == nil || len(c.trees) >= renderCacheSize {
		c.trees = map[*gen.Device][]*node{}
	}
	c.trees[root] = n
	c.mu.Unlock()
	return n, nil
}

// retrieval reads the filter and with-defaults parameters shared by get and
// get-config.
func retrieval(ps map[string]*node) (*filter, withDefaults, error) {
	f, err := parseFilter(ps["filter"])
	if err != nil {
		return nil, 0, err
	}
	wd, err := parseWithDefaults(ps["with-defaults"])
	return f, wd, err
}

func (h *Handler) get(s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("filter"), xmlName(wdParamNS, "with-defaults"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	f, wd, err := retrieval(ps)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	root, err := h.store.View(agent.Running, true)
	if err != nil {
		return ncxml.Error(h.toRPCError(err, "get"))
	}
	nodes, err := treeNodes(root)
	if err != nil {
		return ncxml.Error(h.toRPCError(err, "get"))
	}
	nodes = applyDefaults(nodes, schemaRoot(), wd, false)
	nodes = append(nodes, h.monitoringNodes(s)...)
	return ncxml.Data(marshalNodes(f.apply(nodes), ncxml.BaseNS))
}

func (h *Handler) getConfig(s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("source"), p("filter"), xmlName(wdParamNS, "with-defaults"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	ds, _, err := datastoreArg(ps, "source", false)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	f, wd, err := retrieval(ps)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	nodes, err := h.rendered.nodes(h.store.Get(ds))
	if err != nil {
		return ncxml.Error(h.toRPCError(err, "get-config"))
	}
	nodes = applyDefaults(nodes, schemaRoot(), wd, true)
	return ncxml.Data(marshalNodes(f.apply(nodes), ncxml.BaseNS))
}

// existsIn returns a lookup of paths in a tree, for default-operation none.
func existsIn(root *gen.Device) func([]*gnmi.PathElem) bool {
	return func(elems []*gnmi.PathElem) bool {
		_, ok, err := agent.Lookup(root, &gnmi.Path{Elem: elems})
		return err == nil && ok
	}
}

func (h *Handler) editConfig(ctx context.Context, s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("target"), p("default-operation"), p("test-option"), p("error-option"), p("config"), p("url"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := canWrite(s, "edit-config"); err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	ds, _, err := datastoreArg(ps, "target", false)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	choice := func(name, def string, allowed ...string) (string, error) {
		n := ps[name]
		if n == nil {
			return def, nil
		}
		v := strings.TrimSpace(n.text)
		for _, a := range allowed {
			if v == a {
				return v, nil
			}
		}
		return "", ncxml.InvalidValue(ncxml.Protocol, fmt.Sprintf("%s %q is not one of %s", name, v, strings.Join(allowed, ", ")))
	}
	defOp, err := choice("default-operation", "merge", "merge", "replace", "none")
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	test, err := choice("test-option", "test-then-set", "test-then-set", "set", "test-only")
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	errOpt, err := choice("error-option", "stop-on-error", "stop-on-error", "rollback-on-error", "continue-on-error")
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if ps["url"] != nil {
		return ncxml.Error(ncxml.OperationNotSupported(ncxml.Protocol, "<url> is not supported (:url is not advertised); send the data in <config>"))
	}
	cfg := ps["config"]
	if cfg == nil {
		return ncxml.Error(ncxml.MissingElement(ncxml.Protocol, "config", "edit-config needs <config>"))
	}
	edits, err := convertConfig(cfg, defOp, existsIn(h.store.Get(ds)))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	var errs []*ncxml.RPCError
	if errOpt == "continue-on-error" {
		// Keep the edits that apply on their own, report the others.
		tx := h.store.Begin(ds)
		var good []agent.Edit
		for _, e := range edits {
			if err := tx.Apply(e); err != nil {
				errs = append(errs, h.toRPCError(err, "edit-config"))
				continue
			}
			good = append(good, e)
		}
		edits = good
	}
	if test == "test-only" {
		tx := h.store.Begin(ds)
		if err := tx.Apply(edits...); err != nil {
			return ncxml.Error(append(errs, h.toRPCError(err, "edit-config"))...)
		}
		if err := h.store.ValidateTx(ctx, tx); err != nil {
			return ncxml.Error(append(errs, h.toRPCError(err, "edit-config (test-only)"))...)
		}
	} else if len(edits) > 0 {
		if ds == agent.Candidate {
			err = h.store.EditCandidate(owner(s), edits...)
		} else {
			tx := h.store.Begin(agent.Running)
			if err = tx.Apply(edits...); err == nil {
				_, err = h.store.Commit(ctx, tx, agent.CommitOptions{User: s.Username(), Owner: owner(s), Comment: "NETCONF edit-config"})
			}
		}
		if err != nil {
			errs = append(errs, h.toRPCError(err, "edit-config"))
		}
	}
	if len(errs) > 0 {
		return ncxml.Error(errs...)
	}
	return ncxml.OK()
}

// rootJSON is the RFC 7951 JSON of a whole tree: a datastore, or inline
// <config> (without operation attributes).
func (h *Handler) rootJSON(ds agent.Datastore, cfg *node) ([]byte, error) {
	if cfg == nil {
		return agent.EmitJSON(h.store.Get(ds))
	}
	obj := map[string]any{}
	root := schemaRoot()
	for _, n := range cfg.children {
		e, elem, err := resolveChild(n, root, nil)
		if err != nil {
			return nil, err
		}
		if _, ok, _ := operationOf(n); ok {
			return nil, ncxml.UnknownAttribute(ncxml.Protocol, "operation", n.name.Local, "operation attributes belong in edit-config, not in a whole configuration")
		}
		v, err := toJSON(n, e, []*gnmi.PathElem{elem}, nil)
		if err != nil {
			return nil, err
		}
		m, _ := moduleOf(nsOf(e))
		obj[m.Name+":"+e.Name] = v
	}
	return json.Marshal(obj)
}

// wholeTx returns a transaction from running whose tree is the given
// configuration, diffed as a whole.
func (h *Handler) wholeTx(raw []byte) (*agent.Tx, error) {
	tx := h.store.Begin(agent.Running)
	err := tx.Apply(agent.Edit{Op: agent.OpReplace, Path: &gnmi.Path{}, Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: raw}}})
	return tx, err
}

func (h *Handler) copyConfig(ctx context.Context, s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("target"), p("source"), xmlName(wdParamNS, "with-defaults"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := canWrite(s, "copy-config"); err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	target, _, err := datastoreArg(ps, "target", false)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	source, cfg, err := datastoreArg(ps, "source", true)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if cfg == nil && source == target {
		return ncxml.Error(ncxml.InvalidValue(ncxml.Protocol, fmt.Sprintf("copy-config from %s to itself changes nothing", source)))
	}
	if cfg == nil && source == agent.Running && target == agent.Candidate {
		if err := h.store.ReplaceCandidate(owner(s), h.store.Running()); err != nil {
			return ncxml.Error(h.toRPCError(err, "copy-config"))
		}
		return ncxml.OK()
	}
	raw, err := h.rootJSON(source, cfg)
	if err != nil {
		return ncxml.Error(h.toRPCError(err, "copy-config"))
	}
	tx, err := h.wholeTx(raw)
	if err != nil {
		return ncxml.Error(h.toRPCError(err, "copy-config"))
	}
	if target == agent.Candidate {
		err = h.store.ReplaceCandidate(owner(s), tx.Root())
	} else {
		_, err = h.store.Commit(ctx, tx, agent.CommitOptions{User: s.Username(), Owner: owner(s), Comment: "NETCONF copy-config"})
	}
	if err != nil {
		return ncxml.Error(h.toRPCError(err, "copy-config"))
	}
	return ncxml.OK()
}

func (h *Handler) deleteConfig(s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("target"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	ds, _, err := datastoreArg(ps, "target", false)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	return ncxml.Error(ncxml.OperationFailed(ncxml.Protocol, fmt.Sprintf(
		"the %s datastore cannot be deleted (RFC 6241 7.4); to empty it use edit-config with operation=\"remove\" or copy-config from an empty <config/>", ds)))
}

func (h *Handler) validate(ctx context.Context, s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("source"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	ds, cfg, err := datastoreArg(ps, "source", true)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	raw, err := h.rootJSON(ds, cfg)
	if err == nil {
		var tx *agent.Tx
		if tx, err = h.wholeTx(raw); err == nil {
			err = h.store.ValidateTx(ctx, tx)
		}
	}
	if err != nil {
		return ncxml.Error(h.toRPCError(err, "validate"))
	}
	return ncxml.OK()
}

func (h *Handler) lock(s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("target"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := canWrite(s, "lock"); err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	ds, _, err := datastoreArg(ps, "target", false)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := h.store.Lock(ds, owner(s)); err != nil {
		var le *agent.LockError
		if errors.As(err, &le) {
			return ncxml.Error(ncxml.LockDenied(le.Holder.Session,
				fmt.Sprintf("the %s datastore is already locked by %s", ds, le.Holder)))
		}
		return ncxml.Error(h.toRPCError(err, "lock "+ds.String()))
	}
	h.mu.Lock()
	h.locks[ds] = lockRecord{owner: owner(s), since: h.clock.Now()}
	h.mu.Unlock()
	return ncxml.OK()
}

func (h *Handler) unlock(s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("target"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	ds, _, err := datastoreArg(ps, "target", false)
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := h.store.Unlock(ds, owner(s)); err != nil {
		var le *agent.LockError
		if errors.As(err, &le) {
			e := ncxml.InUse(ncxml.Protocol, fmt.Sprintf("the %s datastore is locked by %s, not by this session", ds, le.Holder))
			id := le.Holder.Session
			e.Info.SessionID = &id
			return ncxml.Error(e)
		}
		return ncxml.Error(h.toRPCError(err, "unlock "+ds.String()))
	}
	return ncxml.OK()
}

func (h *Handler) discard(s *netconf.Session, op *node) ncxml.Reply {
	if _, err := params(op); err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := canWrite(s, "discard-changes"); err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := h.store.DiscardCandidate(owner(s)); err != nil {
		return ncxml.Error(h.toRPCError(err, "discard-changes"))
	}
	return ncxml.OK()
}
