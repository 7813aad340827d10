package gnmi

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/internal/redact"
)

// Status is the one mapping of datastore and engine errors to gRPC
// statuses, shared by gNMI and gNSI certz (they share the grpc.Server). An
// error of a known kind keeps its operator text, which names the node and
// never quotes a value whole; any other error is a fault of the agent: the
// client is told Internal with msgInternal and log gets the cause.
func Status(log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	var le *agent.LockError
	switch {
	case errors.As(err, &le):
		return status.Errorf(codes.FailedPrecondition, "%v; nothing was changed: unlock it or wait", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, errPath), errors.Is(err, errValue):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, agent.ErrPersistID):
		// gNMI's commit extension has ids, not NETCONF persist-ids.
		return status.Error(codes.InvalidArgument, "the commit id does not match the pending confirmed commit's; give the id it was started with")
	case errors.Is(err, agent.ErrPendingCommit):
		return status.Errorf(codes.FailedPrecondition, "%v; nothing was changed", err)
	case errors.Is(err, agent.ErrNoPendingCommit), errors.Is(err, agent.ErrLocked), errors.Is(err, api.ErrMissing):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, agent.ErrAccessDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, agent.ErrApply):
		return status.Errorf(codes.Aborted, "%v; nothing was changed", err)
	case errors.Is(err, agent.ErrPersist):
		// The store's message already says that nothing changed.
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, api.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, api.ErrInvalid), errors.Is(err, agent.ErrUnknownPath), errors.Is(err, agent.ErrReadOnly):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, agent.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	}
	log.Error("gRPC request failed on the server", "err", redact.Message(err.Error()))
	return status.Error(codes.Internal, msgInternal)
}

// status maps err with the server's logger.
func (s *Server) status(err error) error { return Status(s.log, err) }
