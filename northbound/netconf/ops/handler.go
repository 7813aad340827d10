package ops

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/redact"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	"github.com/pkiagent/pkiagent/telemetry"
	pkyang "github.com/pkiagent/pkiagent/yang"
)

// Namespaces of the standard modules the handler speaks.
const (
	monNS     = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
	wdParamNS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
	ylibNS    = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
	ncnNS     = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
)

// Config configures a Handler. Store and Bus are required.
type Config struct {
	Store *agent.Store
	// Bus is what the store, the engine and the agent's loops publish on;
	// the handler keeps the last notifications of it for replay.
	Bus *telemetry.Bus
	// PKI is the engine behind the pki-authority rpcs; nil makes them
	// fail with operation-failed.
	PKI api.PKI
	// Clock stamps the notifications the handler makes (the store's clock
	// when nil).
	Clock clock.Clock
	// Logger (slog.Default when nil).
	Logger *slog.Logger
	// ReplaySize is how many notifications are kept for replay
	// (DefaultReplaySize when 0).
	ReplaySize int
}

// DefaultReplaySize is the default length of the notification replay
// buffer: the last 1024 notifications, whatever their age.
const DefaultReplaySize = 1024

// DefaultConfirmTimeout is the confirm-timeout of RFC 6241 8.4.5.1.
const DefaultConfirmTimeout = 600 * time.Second

// Handler serves the NETCONF operations of pki-agent. It implements
// netconf.Handler and netconf.SessionObserver; Run must be running for
// notifications of commits and of the PKI engine.
type Handler struct {
	// started is when the handler (and its replay buffer) was made; locks
	// (guarded by mu) is when each NETCONF lock was taken.
	started time.Time
	locks   map[agent.Datastore]lockRecord

	store  *agent.Store
	pki    api.PKI
	clock  clock.Clock
	log    *slog.Logger
	replay *telemetry.Replay[*node]
	bus    *telemetry.Bus
	sub    *telemetry.Subscription // subscribed at New so no commit is missed

	mu       sync.Mutex
	sessions map[uint32]*sessState

	rendered renderCache
}

// sessState is what the handler keeps per session.
type sessState struct {
	sess *netconf.Session
	done chan struct{} // closed when the session has ended
	sub  *subscription // nil unless subscribed
}

// New returns a Handler over cfg.Store.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("netconf handler: no datastore")
	}
	if cfg.Bus == nil {
		return nil, errors.New("netconf handler: no telemetry bus")
	}
	if _, err := agent.Module(); err != nil {
		return nil, fmt.Errorf("netconf handler: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = cfg.Store.Clock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReplaySize <= 0 {
		cfg.ReplaySize = DefaultReplaySize
	}
	return &Handler{
		store: cfg.Store, pki: cfg.PKI, clock: cfg.Clock, log: cfg.Logger,
		replay:   telemetry.NewReplay[*node](cfg.ReplaySize),
		bus:      cfg.Bus,
		sub:      cfg.Bus.Subscribe(4096),
		sessions: map[uint32]*sessState{},
		started:  cfg.Clock.Now(),
		locks:    map[agent.Datastore]lockRecord{},
	}, nil
}

func owner(s *netconf.Session) api.Owner { return api.NetconfOwner(s.ID()) }

func base(local string) xml.Name { return xml.Name{Space: ncxml.BaseNS, Local: local} }

// baseOperations are the operations of RFC 6241.
var baseOperations = map[string]bool{
	"get": true, "get-config": true, "edit-config": true, "copy-config": true, "delete-config": true,
	"lock": true, "unlock": true, "validate": true, "commit": true, "cancel-commit": true,
	"discard-changes": true, "kill-session": true, "close-session": true,
}

// Handle implements netconf.Handler.
func (h *Handler) Handle(ctx context.Context, s *netconf.Session, req *ncxml.Request) ncxml.Reply {
	d := req.Decoder()
	tok, err := d.Token()
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok {
		return ncxml.Error(ncxml.MalformedMessage("cannot read the operation element"))
	}
	op, err := decodeTree(d, start)
	if err != nil {
		return ncxml.Error(ncxml.MalformedMessage("cannot read the operation element"))
	}
	name := req.Operation
	if name.Space == "" && baseOperations[name.Local] {
		// github.com/nemith/netconf v0.0.2 sends <lock xmlns=""> and
		// <unlock xmlns="">: take a base operation in no namespace as the
		// base operation it names, with its parameters.
		name.Space = ncxml.BaseNS
		op.setNamespace("", ncxml.BaseNS)
	}
	var r ncxml.Reply
	switch {
	case name == base("get"):
		r = h.get(s, op)
	case name == base("get-config"):
		r = h.getConfig(s, op)
	case name == base("edit-config"):
		r = h.editConfig(ctx, s, op)
	case name == base("copy-config"):
		r = h.copyConfig(ctx, s, op)
	case name == base("delete-config"):
		r = h.deleteConfig(s, op)
	case name == base("lock"):
		r = h.lock(s, op)
	case name == base("unlock"):
		r = h.unlock(s, op)
	case name == base("validate"):
		r = h.validate(ctx, s, op)
	case name == base("commit"):
		r = h.commit(ctx, s, op)
	case name == base("cancel-commit"):
		r = h.cancelCommit(ctx, s, op)
	case name == base("discard-changes"):
		r = h.discard(s, op)
	case name == base("kill-session"):
		r = h.killSession(ctx, s, op)
	case name == xml.Name{Space: ncxml.NotificationNS, Local: "create-subscription"}:
		r = h.createSubscription(s, op)
	case name == xml.Name{Space: monNS, Local: "get-schema"}:
		r = h.getSchema(op)
	case name.Space == NS && slices.Contains(agent.RPCNames, name.Local),
		name.Space == pkyang.System.Namespace && slices.Contains(agent.SystemRPCNames, name.Local):
		r = h.agentRPC(ctx, s, op)
	default:
		r = ncxml.Error(ncxml.OperationNotSupported(ncxml.Protocol,
			fmt.Sprintf("operation <%s> in namespace %q is not supported by this server", name.Local, name.Space)))
	}
	// The one rendering of error texts: what the client reads and what is
	// logged never carries key material or a value whole.
	r = r.MapErrors(redactRPCError)
	if errs := r.Errors(); len(errs) > 0 {
		h.log.Info("netconf: rpc failed", "session", s.ID(), "user", s.Username(), "operation", req.Operation.Local,
			"error_tag", errs[0].Tag, "error", errs[0].Message)
	}
	return r
}

// redactRPCError renders the message of an rpc-error with redact.Message.
func redactRPCError(e *ncxml.RPCError) *ncxml.RPCError {
	m := redact.Message(e.Message)
	if m == e.Message {
		return e
	}
	c := *e
	c.Message = m
	return &c
}

// params checks that the children of op are known parameters (in op's
// namespace unless named with another) and returns them by local name.
func params(op *node, allowed ...xml.Name) (map[string]*node, error) {
	out := map[string]*node{}
	for _, c := range op.children {
		known := false
		for _, a := range allowed {
			if a.Local == c.name.Local && (a.Space == c.name.Space || (a.Space == "" && c.name.Space == op.name.Space)) {
				known = true
			}
		}
		if !known {
			return nil, ncxml.UnknownElement(ncxml.Protocol, c.name.Local,
				fmt.Sprintf("<%s> takes no parameter <%s> (namespace %q)", op.name.Local, c.name.Local, c.name.Space))
		}
		if _, dup := out[c.name.Local]; dup {
			return nil, ncxml.BadElement(ncxml.Protocol, c.name.Local, fmt.Sprintf("parameter <%s> of <%s> is given twice", c.name.Local, op.name.Local))
		}
		out[c.name.Local] = c
	}
	return out, nil
}

func p(local string) xml.Name { return xml.Name{Local: local} }

// datastoreArg reads <source> or <target>: running, candidate, or (when
// inline is true) <config>. It returns the datastore or the config node.
func datastoreArg(ps map[string]*node, param string, inline bool) (agent.Datastore, *node, error) {
	n := ps[param]
	if n == nil {
		return 0, nil, ncxml.MissingElement(ncxml.Protocol, param, fmt.Sprintf("<%s> is required", param))
	}
	if len(n.children) != 1 {
		return 0, nil, ncxml.BadElement(ncxml.Protocol, param, fmt.Sprintf("<%s> must name one datastore: <running/> or <candidate/>", param))
	}
	c := n.children[0]
	if c.name.Space != ncxml.BaseNS {
		return 0, nil, ncxml.UnknownNamespace(ncxml.Protocol, c.name.Local, c.name.Space, fmt.Sprintf("<%s> in <%s> must be in namespace %s", c.name.Local, param, ncxml.BaseNS))
	}
	switch c.name.Local {
	case "running":
		return agent.Running, nil, nil
	case "candidate":
		return agent.Candidate, nil, nil
	case "config":
		if inline {
			return 0, c, nil
		}
	case "startup":
		return 0, nil, ncxml.OperationNotSupported(ncxml.Protocol,
			"this server has no startup datastore (:startup is not advertised): running is saved on every commit")
	case "url":
		return 0, nil, ncxml.OperationNotSupported(ncxml.Protocol, "<url> is not supported (:url is not advertised)")
	}
	return 0, nil, ncxml.BadElement(ncxml.Protocol, param, fmt.Sprintf("<%s> cannot be <%s> here", param, c.name.Local))
}

// canWrite checks that the session's role may change configuration.
func canWrite(s *netconf.Session, what string) error {
	if api.CanWrite(s.Role()) {
		return nil
	}
	return ncxml.AccessDenied(ncxml.Application,
		fmt.Sprintf("%s needs role admin; user %q has role %q", what, s.Username(), s.Role()))
}

// toRPCError is the one mapping of datastore and engine errors to
// rpc-errors (edits, locks, commits and the pki-authority rpcs): an error
// of a known kind keeps its operator text, which says what failed and how
// to fix it, and its error-path (the node of an *api.PathError, the input
// leaf of an *api.InputError); any other error is a fault of the agent:
// the client is told operation-failed and the log gets the cause.
func (h *Handler) toRPCError(err error, what string) *ncxml.RPCError {
	if errs := ncxml.AsRPCErrors(err); len(errs) > 0 {
		return errs[0]
	}
	var le *agent.LockError
	if errors.As(err, &le) {
		id := le.Holder.Session
		e := ncxml.InUse(ncxml.Protocol, fmt.Sprintf("%s: the %s datastore is locked by %s; wait until it is unlocked", what, le.Datastore, le.Holder))
		e.Info.SessionID = &id
		return e
	}
	var ce *agent.ConflictError
	if errors.As(err, &ce) {
		// As for a dirty candidate: the resource (running's newer change)
		// stands in the way of the commit.
		e := ncxml.ResourceDenied(ncxml.Application, what+": "+err.Error())
		if len(ce.Elems) > 0 {
			e.WithPath(xpathOf(ce.Elems), pathNS)
		}
		return e
	}
	msg := what + ": " + err.Error()
	var path string
	elems := errorElems(err)
	if elems != nil {
		path = xpathOf(elems)
	}
	withPath := func(e *ncxml.RPCError) *ncxml.RPCError {
		if path != "" {
			e.WithPath(path, pathNS)
		}
		return e
	}
	_, edit := errors.AsType[*api.PathError](err)
	switch {
	case edit && errors.Is(err, api.ErrExists):
		return withPath(ncxml.DataExists(msg + "; use merge or replace to change it"))
	case edit && errors.Is(err, api.ErrMissing):
		return withPath(ncxml.DataMissing(msg + "; use remove to delete it only if present"))
	case errors.Is(err, agent.ErrUnknownPath):
		bad := ""
		if len(elems) > 0 {
			bad = elems[len(elems)-1].Name
		}
		return withPath(ncxml.UnknownElement(ncxml.Application, bad, msg))
	case errors.Is(err, agent.ErrAccessDenied):
		return ncxml.AccessDenied(ncxml.Application, msg)
	case errors.Is(err, agent.ErrKeyLeaf):
		return withPath(ncxml.OperationNotSupported(ncxml.Application, msg))
	case errors.Is(err, agent.ErrReadOnly), errors.Is(err, api.ErrInvalid):
		return withPath(ncxml.InvalidValue(ncxml.Application, msg))
	case errors.Is(err, agent.ErrPendingCommit):
		return ncxml.InUse(ncxml.Protocol, msg)
	case errors.Is(err, agent.ErrPersistID):
		return ncxml.InvalidValue(ncxml.Protocol, msg+"; give the <persist-id> of the pending confirmed commit")
	case errors.Is(err, agent.ErrNoPendingCommit), errors.Is(err, agent.ErrNoLock):
		return ncxml.OperationFailed(ncxml.Protocol, msg)
	case errors.Is(err, agent.ErrCandidateDirty):
		return ncxml.ResourceDenied(ncxml.Protocol, msg)
	case errors.Is(err, agent.ErrApply), errors.Is(err, agent.ErrPersist), errors.Is(err, agent.ErrClosed),
		errors.Is(err, api.ErrExists), errors.Is(err, api.ErrMissing):
		// An rpc's object that exists or is missing (a key, a router) is
		// no data node of the edit: the operation failed.
		return ncxml.OperationFailed(ncxml.Application, msg)
	}
	h.log.Error("netconf: unexpected error", "operation", what, "err", redact.Message(err.Error()))
	return ncxml.OperationFailed(ncxml.Application, what+" failed on the server; the agent log has the details")
}

// errorElems returns the node err names: the path of an *api.PathError,
// or the rpc input leaf of an *api.InputError (the rpc itself when the
// leaf is not one of its inputs).
func errorElems(err error) []*gnmi.PathElem {
	if pe, ok := errors.AsType[*api.PathError](err); ok {
		return pe.Path.GetElem()
	}
	ie, ok := errors.AsType[*api.InputError](err)
	if !ok {
		return nil
	}
	at := []*gnmi.PathElem{{Name: ie.RPC}}
	if e := schemaRoot().Dir[ie.RPC]; e != nil && e.RPC != nil && e.RPC.Input != nil && e.RPC.Input.Dir[ie.Leaf] != nil {
		at = append(at, &gnmi.PathElem{Name: ie.Leaf})
	}
	return at
}
