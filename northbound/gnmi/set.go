package gnmi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/agent"
)

// Set applies the deletes, then the replaces, then the updates of req as
// one transaction on running: all of them are committed or none is. The
// gnmi_ext.Commit extension makes it a confirmed commit, or confirms,
// cancels or extends the pending one.
func (s *Server) Set(ctx context.Context, req *gnmi.SetRequest) (*gnmi.SetResponse, error) {
	c, _ := CallerFrom(ctx)
	if len(req.GetUnionReplace()) > 0 {
		return nil, status.Error(codes.Unimplemented, "union_replace is not supported: send the change as replace and update operations")
	}
	var commit *gnmi_ext.Commit
	for _, e := range req.GetExtension() {
		switch x := e.GetExt().(type) {
		case *gnmi_ext.Extension_Commit:
			if commit != nil {
				return nil, status.Error(codes.InvalidArgument, "more than one commit extension")
			}
			commit = x.Commit
		default:
			return nil, status.Errorf(codes.Unimplemented, "Set extension %T is not supported; only gnmi_ext.Commit is", e.GetExt())
		}
	}
	nops := len(req.GetDelete()) + len(req.GetReplace()) + len(req.GetUpdate())
	if nops > s.limits.MaxSetOps {
		return nil, status.Errorf(codes.ResourceExhausted, "Set has %d operations; at most %d per request", nops, s.limits.MaxSetOps)
	}
	owner := api.Owner{Protocol: "gnmi", Name: fmt.Sprintf("%s@%s set %d", c.User, c.Peer, s.seq.Add(1))}
	resp := &gnmi.SetResponse{Prefix: req.GetPrefix()}
	if commit != nil {
		resp.Extension = []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: commit}}}
		if commit.GetId() == "" {
			return nil, status.Error(codes.InvalidArgument, "commit extension without an id")
		}
		if commit.GetAction() == nil {
			return nil, status.Error(codes.InvalidArgument, "commit extension without an action (commit, confirm, cancel or set_rollback_duration)")
		}
		if commit.GetCommit() == nil {
			if nops > 0 {
				return nil, status.Error(codes.InvalidArgument, "confirm, cancel and set_rollback_duration take no deletes, replaces or updates")
			}
			if err := s.commitAction(ctx, agent.CommitOptions{User: c.User, Owner: owner}, commit); err != nil {
				return nil, err
			}
			resp.Timestamp = s.clock.Now().UnixNano()
			return resp, nil
		}
	}

	edits, results, err := decodeSet(req)
	if err != nil {
		return nil, err
	}
	tx := s.store.Begin(agent.Running)
	if err := tx.Apply(edits...); err != nil {
		return nil, s.status(fmt.Errorf("set: %w", err))
	}
	opts := agent.CommitOptions{User: c.User, Owner: owner, Comment: "gNMI Set"}
	if commit != nil {
		d := s.limits.DefaultRollback
		if rd := commit.GetCommit().GetRollbackDuration(); rd != nil {
			if err := rd.CheckValid(); err != nil || rd.AsDuration() <= 0 {
				return nil, status.Errorf(codes.InvalidArgument, "commit %s: rollback_duration must be positive", commit.GetId())
			}
			d = rd.AsDuration()
		}
		// The id is the commit's persist token; it is never sent as a
		// PersistID, so with a confirmed commit pending the store refuses
		// this one, as the extension wants (FAILED_PRECONDITION).
		opts.Confirm = &agent.ConfirmOptions{Timeout: d, Persist: commit.GetId()}
		opts.Comment = fmt.Sprintf("gNMI Set, confirmed commit %s (rolls back after %s)", commit.GetId(), d)
	}
	info, err := s.store.Commit(ctx, tx, opts)
	if err != nil {
		if commit != nil {
			return nil, s.commitStatus(commit.GetId(), err)
		}
		return nil, s.status(fmt.Errorf("set: %w", err))
	}
	s.log.Info("gNMI Set committed", "user", c.User, "peer", c.Peer, "commit", info.ID, "ops", nops, "confirmed", commit != nil)
	resp.Response = results
	resp.Timestamp = s.clock.Now().UnixNano()
	return resp, nil
}

// decodeSet turns the deletes, replaces and updates of req into edits, in
// that order, with the UpdateResult of each.
func decodeSet(req *gnmi.SetRequest) ([]agent.Edit, []*gnmi.UpdateResult, error) {
	nops := len(req.GetDelete()) + len(req.GetReplace()) + len(req.GetUpdate())
	edits := make([]agent.Edit, 0, nops)
	results := make([]*gnmi.UpdateResult, 0, nops)
	for _, p := range req.GetDelete() {
		elems, err := fullPath(req.GetPrefix(), p, false)
		if err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "delete %s: %v", pathText(p), err)
		}
		edits = append(edits, agent.Edit{Op: agent.OpRemove, Path: &gnmi.Path{Elem: elems}})
		results = append(results, &gnmi.UpdateResult{Path: p, Op: gnmi.UpdateResult_DELETE})
	}
	for _, group := range []struct {
		ups  []*gnmi.Update
		op   agent.Op
		res  gnmi.UpdateResult_Operation
		name string // as gNMI names it
	}{
		{req.GetReplace(), agent.OpReplace, gnmi.UpdateResult_REPLACE, "replace"},
		{req.GetUpdate(), agent.OpMerge, gnmi.UpdateResult_UPDATE, "update"},
	} {
		for _, u := range group.ups {
			if es, ok, err := listEntries(req.GetPrefix(), u, group.op); ok {
				if err != nil {
					return nil, nil, status.Errorf(codes.InvalidArgument, "%s %s: %v", group.name, pathText(u.GetPath()), err)
				}
				edits = append(edits, es...)
				results = append(results, &gnmi.UpdateResult{Path: u.GetPath(), Op: group.res})
				continue
			}
			elems, err := fullPath(req.GetPrefix(), u.GetPath(), false)
			if err != nil {
				return nil, nil, status.Errorf(codes.InvalidArgument, "%s %s: %v", group.name, pathText(u.GetPath()), err)
			}
			v, err := setValue(u, elems)
			if err != nil {
				return nil, nil, status.Errorf(codes.InvalidArgument, "%s %s: %v", group.name, api.PathString(&gnmi.Path{Elem: elems}), err)
			}
			edits = append(edits, agent.Edit{Op: group.op, Path: &gnmi.Path{Elem: elems}, Value: v})
			results = append(results, &gnmi.UpdateResult{Path: u.GetPath(), Op: group.res})
		}
	}
	return edits, results, nil
}

// commitAction confirms, cancels or extends the pending confirmed commit,
// by names who asks; the extension's id is the persist token it carries.
func (s *Server) commitAction(ctx context.Context, by agent.CommitOptions, c *gnmi_ext.Commit) error {
	id := c.GetId()
	by.PersistID = id
	var err error
	switch {
	case c.GetConfirm() != nil:
		err = s.store.Confirm(by)
	case c.GetCancel() != nil:
		err = s.store.CancelCommit(ctx, by)
	case c.GetSetRollbackDuration() != nil:
		rd := c.GetSetRollbackDuration().GetRollbackDuration()
		if rd == nil || rd.CheckValid() != nil || rd.AsDuration() <= 0 {
			return status.Errorf(codes.InvalidArgument, "commit %s: set_rollback_duration needs a positive rollback_duration", id)
		}
		by.Confirm = &agent.ConfirmOptions{Timeout: rd.AsDuration()}
		err = s.store.ExtendPending(by)
	default:
		return status.Errorf(codes.InvalidArgument, "commit %s: unknown action", id)
	}
	return s.commitStatus(id, err)
}

// commitStatus maps an error of the confirmed-commit machine to the codes
// of the gNMI extension: no commit pending, or one this request may not act
// on, FAILED_PRECONDITION; a wrong id INVALID_ARGUMENT.
func (s *Server) commitStatus(id string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, agent.ErrNoPendingCommit):
		return status.Errorf(codes.FailedPrecondition, "commit %s: no confirmed commit is pending", id)
	case errors.Is(err, agent.ErrPersistID):
		return status.Errorf(codes.InvalidArgument, "commit %s: this is not the id of the pending confirmed commit; give the id it was started with", id)
	case errors.Is(err, agent.ErrPendingCommit):
		if p, ok := s.store.Pending(); ok {
			return status.Errorf(codes.FailedPrecondition, "commit %s: confirmed commit %d by %s is pending until %s; confirm or cancel it first", id, p.ID, p.User, p.Deadline.UTC().Format(time.RFC3339))
		}
		return status.Errorf(codes.FailedPrecondition, "commit %s: another confirmed commit is pending; confirm or cancel it first", id)
	}
	return s.status(fmt.Errorf("commit %s: %w", id, err))
}

// setValue checks a Set value at elems: JSON (json_ietf_val, or json_val
// as gnmic sends by default) for any node, holding no null and no state,
// or a typed scalar for a leaf.
func setValue(u *gnmi.Update, elems []*gnmi.PathElem) (*gnmi.TypedValue, error) {
	v := u.GetVal()
	if v == nil {
		if u.GetValue() != nil {
			return nil, fmt.Errorf("%w: the deprecated value field is not supported; use val", errValue)
		}
		return nil, fmt.Errorf("%w: no value", errValue)
	}
	switch x := v.GetValue().(type) {
	case *gnmi.TypedValue_JsonIetfVal:
		return v, checkJSONValue(elems, x.JsonIetfVal)
	case *gnmi.TypedValue_JsonVal:
		return v, checkJSONValue(elems, x.JsonVal)
	case *gnmi.TypedValue_StringVal, *gnmi.TypedValue_IntVal, *gnmi.TypedValue_UintVal,
		*gnmi.TypedValue_BoolVal, *gnmi.TypedValue_LeaflistVal, *gnmi.TypedValue_DoubleVal:
		return v, nil
	case nil:
		return nil, fmt.Errorf("%w: empty value", errValue)
	default:
		return nil, fmt.Errorf("%w: a value of type %s is not supported; use json_val, json_ietf_val or a typed scalar (string, int, uint, bool, double, leaf-list)", errValue, valueKind(v))
	}
}

func pathText(p *gnmi.Path) string {
	if p == nil {
		return "/"
	}
	return api.PathString(p)
}
