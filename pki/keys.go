package pki

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/pkiagent/pkiagent/agent/api"
)

// DeletePrivateKey implements api.PKI: the key of name is destroyed, with
// the certificate stored beside it. It is refused while a configured
// client-certificate, the gNMI server certificate (Config.ServerCertName) or
// an enrollment uses it, unless in.Force.
func (e *Engine) DeletePrivateKey(ctx context.Context, c api.Caller, in api.DeletePrivateKeyInput) (err error) {
	if err := checkName("delete-private-key", in.Name); err != nil {
		return err
	}
	defer func() {
		e.auditEvent(c, "system.delete_private_key", "delete private key "+in.Name, map[string]any{"name": in.Name, "force": in.Force, "success": err == nil}, err)
	}()
	e.mu.Lock()
	mc, ok := e.certs[in.Name]
	configured := slices.Contains(e.certificates.names(), in.Name)
	installed := ok && mc.cert != nil
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: no private key named %s", api.ErrMissing, in.Name)
	}
	e.enroll.mu.Lock()
	enrolling := e.enroll.busy[in.Name]
	_, enrolled := e.enroll.specs[in.Name]
	e.enroll.mu.Unlock()
	var uses []string
	if installed {
		uses = append(uses, "certificate "+in.Name+" is installed for it")
	}
	if configured {
		uses = append(uses, "client-certificate "+in.Name+" is configured")
	}
	if enrolled || enrolling {
		uses = append(uses, "an enrollment of "+in.Name+" is configured or in progress")
	}
	if e.cfg.ServerCertName == in.Name {
		uses = append(uses, "the gNMI server certificate (--tls-cert-name) is "+in.Name)
	}
	if len(uses) > 0 && !in.Force {
		return fmt.Errorf("%w: key %s is in use (%s): remove the use first, or delete with force", api.ErrInvalid, in.Name, strings.Join(uses, "; "))
	}
	if enrolling {
		return fmt.Errorf("%w: an enrollment of %s is in progress; delete it when the attempt ends", api.ErrInvalid, in.Name)
	}
	d, ok := e.cfg.Keys[mc.storage].(keyDeleter)
	if !ok {
		return fmt.Errorf("%s storage cannot delete keys", mc.storage)
	}
	if err := d.Delete(in.Name); err != nil {
		return fmt.Errorf("delete key %s from %s storage: %w", in.Name, mc.storage, err)
	}
	if err := os.Remove(certPath(e.cfg.StateDir, in.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.log.Error("the certificate of a deleted key was not removed", "name", in.Name, "err", err)
	}
	e.mu.Lock()
	delete(e.certs, in.Name)
	e.evaluateLocked(false)
	e.mu.Unlock()
	e.log.Info("private key deleted", "name", in.Name, "storage", mc.storage, "force", in.Force, "user", c.User)
	e.enroll.poke() // an enrollment of the name enrolls again
	return nil
}
