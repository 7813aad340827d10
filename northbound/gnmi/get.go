package gnmi

import (
	"context"
	"errors"
	"fmt"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
	yangmod "github.com/pkiagent/pkiagent/yang"
)

// errValue: a Set value cannot be decoded. It becomes InvalidArgument.
var errValue = errors.New("bad value")

func checkEncoding(enc gnmi.Encoding) error {
	switch enc {
	case gnmi.Encoding_JSON, gnmi.Encoding_JSON_IETF, gnmi.Encoding_PROTO:
		return nil
	}
	return status.Errorf(codes.Unimplemented, "encoding %s is not supported; use JSON, JSON_IETF or PROTO", enc)
}

func checkModels(models []*gnmi.ModelData) error {
	for _, m := range models {
		known := false
		for _, y := range yangmod.Modules {
			if m.GetName() == y.Name && (m.GetVersion() == "" || m.GetVersion() == y.Revision) {
				known = true
			}
		}
		if !known {
			return status.Errorf(codes.InvalidArgument, "use_models: model %s %s is not served; see Capabilities", m.GetName(), m.GetVersion())
		}
	}
	return nil
}

// tree returns the data a Get of type t reads, config with its defaults
// filled in. Config comes from a cached copy of running (read-only).
func (s *Server) tree(t gnmi.GetRequest_DataType) (*gen.Device, error) {
	switch t {
	case gnmi.GetRequest_CONFIG:
		return s.defaults.get(s.store.Running())
	case gnmi.GetRequest_STATE, gnmi.GetRequest_OPERATIONAL:
		return s.store.State()
	case gnmi.GetRequest_ALL:
		return s.view()
	}
	return nil, status.Errorf(codes.InvalidArgument, "data type %v is not one of ALL, CONFIG, STATE, OPERATIONAL", t)
}

// Get returns a snapshot of config, state or both at the requested paths.
// JSON encodings return one update per selected node; PROTO returns one
// update per leaf with a typed scalar.
func (s *Server) Get(ctx context.Context, req *gnmi.GetRequest) (*gnmi.GetResponse, error) {
	enc := req.GetEncoding()
	if err := checkEncoding(enc); err != nil {
		return nil, err
	}
	if err := checkModels(req.GetUseModels()); err != nil {
		return nil, err
	}
	if len(req.GetExtension()) > 0 {
		return nil, status.Errorf(codes.Unimplemented, "Get extensions are not supported (got %d)", len(req.GetExtension()))
	}
	paths := req.GetPath()
	if len(paths) == 0 {
		paths = []*gnmi.Path{{}}
	}
	type target struct {
		elems []*gnmi.PathElem
		orig  *gnmi.Path
	}
	targets := make([]target, 0, len(paths))
	for _, p := range paths {
		elems, err := fullPath(req.GetPrefix(), p, true)
		if err != nil {
			return nil, s.status(err)
		}
		targets = append(targets, target{elems, p})
	}
	root, err := s.tree(req.GetType())
	if err != nil {
		return nil, s.status(err)
	}
	ts := s.clock.Now().UnixNano()
	resp := &gnmi.GetResponse{}
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			return nil, s.status(err)
		}
		ups, err := render(root, t.elems, enc)
		if err != nil {
			return nil, s.status(err)
		}
		if len(ups) == 0 && len(t.elems) > 0 && !hasWildcard(t.elems) && !isContainer(t.elems) {
			return nil, status.Errorf(codes.NotFound, "nothing at %s", api.PathString(&gnmi.Path{Elem: t.elems}))
		}
		origin := t.orig.GetOrigin()
		if origin == "" {
			origin = req.GetPrefix().GetOrigin()
		}
		n := &gnmi.Notification{Timestamp: ts, Update: ups}
		if origin != "" || req.GetPrefix().GetTarget() != "" {
			n.Prefix = &gnmi.Path{Origin: origin, Target: req.GetPrefix().GetTarget()}
		}
		resp.Notification = append(resp.Notification, n)
	}
	return resp, nil
}

// view returns a private tree of running config, with its defaults, and
// state: what subscriptions read.
func (s *Server) view() (*gen.Device, error) {
	root, err := s.store.View(agent.Running, true)
	if err != nil {
		return nil, err
	}
	fillDefaults(root)
	return root, nil
}

// render returns the updates for what pat selects in root.
func render(root *gen.Device, pat []*gnmi.PathElem, enc gnmi.Encoding) ([]*gnmi.Update, error) {
	var ups []*gnmi.Update
	err := walk(root, pat, func(n node) error {
		if enc == gnmi.Encoding_PROTO {
			return leaves(n, func(path []*gnmi.PathElem, tv *gnmi.TypedValue) error {
				ups = append(ups, &gnmi.Update{Path: &gnmi.Path{Elem: path}, Val: tv})
				return nil
			})
		}
		b, err := nodeJSON(n, enc == gnmi.Encoding_JSON_IETF)
		if err != nil {
			return fmt.Errorf("rendering %s: %w", api.PathString(&gnmi.Path{Elem: n.path}), err)
		}
		if !n.isLeaf() && string(b) == "{}" && len(n.path) > 0 {
			return nil
		}
		v := &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonVal{JsonVal: b}}
		if enc == gnmi.Encoding_JSON_IETF {
			v = &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: b}}
		}
		ups = append(ups, &gnmi.Update{Path: &gnmi.Path{Elem: n.path}, Val: v})
		return nil
	})
	return ups, err
}
