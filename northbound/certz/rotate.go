package certz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnsi/certz"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
)

// rollbackTimeout bounds the rollback of a broken Rotate.
const rollbackTimeout = 30 * time.Second

// rotation is the state of one Rotate stream.
type rotation struct {
	s       *Server
	caller  api.Caller
	profile string
	name    string // the managed certificate of the profile

	eng       Rotation // begun on first need
	installed bool

	trustSaved bool        // trustPrev holds what was there before
	trustPrev  *trustEntry // nil: there was no entry
	trustSet   bool        // a trust bundle was committed
	crlUndo    []func(context.Context) error
	versions   map[string]entityVersion
}

type trustEntry struct{ content, mode string }

// Rotate generates keys and CSRs, installs certificates, trust bundles and
// CRL bundles of one profile, and keeps them when the client finalizes.
// Anything else (an error, a closed or broken stream) rolls everything
// back.
func (s *Server) Rotate(stream certz.Certz_RotateServer) error {
	ctx := stream.Context()
	c, err := caller(ctx, api.CanRunRPC, "rotate certificates (certz Rotate needs role admin or operator)")
	if err != nil {
		return err
	}
	if !s.busy.TryLock() {
		return status.Error(codes.Unavailable, "another certz Rotate is in progress and certz allows one at a time; retry when it ends")
	}
	defer s.busy.Unlock()
	r := &rotation{s: s, caller: c, versions: map[string]entityVersion{}}
	finalized := false
	defer func() {
		if !finalized {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			r.rollback(rctx)
		}
	}()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return status.Error(codes.Aborted, "the Rotate stream was closed before a FinalizeRequest: everything uploaded in it was rolled back")
		}
		if err != nil {
			return err
		}
		if err := r.setProfile(req.GetSslProfileId()); err != nil {
			return err
		}
		switch x := req.GetRotateRequest().(type) {
		case *certz.RotateCertificateRequest_GenerateCsr:
			resp, err := r.generateCSR(ctx, x.GenerateCsr)
			if err != nil {
				return err
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		case *certz.RotateCertificateRequest_Certificates:
			if err := r.upload(ctx, req.GetForceOverwrite(), x.Certificates); err != nil {
				return err
			}
			if err := stream.Send(&certz.RotateCertificateResponse{RotateResponse: &certz.RotateCertificateResponse_Certificates{Certificates: &certz.UploadResponse{}}}); err != nil {
				return err
			}
		case *certz.RotateCertificateRequest_FinalizeRotation:
			r.finalize()
			finalized = true
			return nil
		default:
			return status.Error(codes.InvalidArgument, "rotate_request is empty: send generate_csr, certificates or finalize_rotation")
		}
	}
}

// setProfile fixes the profile of the stream on its first message.
func (r *rotation) setProfile(id string) error {
	if r.profile != "" {
		if id != r.profile {
			return status.Errorf(codes.InvalidArgument, "ssl_profile_id %q: this Rotate is for profile %s; one Rotate handles one profile", id, r.profile)
		}
		return nil
	}
	if err := checkProfileID("ssl_profile_id", id); err != nil {
		return err
	}
	if !r.s.exists(id) {
		return status.Errorf(codes.NotFound, "profile %s does not exist: add it with AddProfile first", id)
	}
	name, err := r.s.certName(id)
	if err != nil {
		return err
	}
	r.profile, r.name = id, name
	return nil
}

func (r *rotation) engine() (Rotation, error) {
	if r.eng == nil {
		e, err := r.s.cfg.Engine.BeginRotation(r.name, r.caller)
		if err != nil {
			return nil, r.s.status(err)
		}
		r.eng = e
	}
	return r.eng, nil
}

func (r *rotation) generateCSR(ctx context.Context, g *certz.GenerateCSRRequest) (*certz.RotateCertificateResponse, error) {
	if len(g.GetIntegrities()) > 0 {
		return nil, status.Error(codes.Unimplemented, "generate_csr.integrities: attested CSRs are not supported")
	}
	if g.GetParams() == nil {
		return nil, status.Error(codes.InvalidArgument, "generate_csr.params is empty: give at least csr_suite and common_name")
	}
	key, in, err := csrInput(g.GetParams())
	if err != nil {
		return nil, err
	}
	if r.installed {
		return nil, status.Error(codes.FailedPrecondition, "generate_csr: a certificate was already uploaded in this Rotate; finalize it, then rotate again for another key")
	}
	eng, err := r.engine()
	if err != nil {
		return nil, err
	}
	csr, err := eng.GenerateCSR(ctx, key, in)
	if err != nil {
		return nil, r.s.status(fmt.Errorf("generate_csr: %w", err))
	}
	return &certz.RotateCertificateResponse{RotateResponse: &certz.RotateCertificateResponse_GeneratedCsr{GeneratedCsr: &certz.GenerateCSRResponse{
		CertificateSigningRequest: &certz.CertificateSigningRequest{
			Type: certz.CertificateType_CERTIFICATE_TYPE_X509, Encoding: certz.CertificateEncoding_CERTIFICATE_ENCODING_PEM,
			CertificateSigningRequest: []byte(csr),
		},
	}}}, nil
}

// upload decodes and checks every entity before applying any, then
// applies the trust bundle, the CRL bundle and the certificate, in that
// order (the certificate is checked against the new trust and CRLs).
func (r *rotation) upload(ctx context.Context, force bool, up *certz.UploadRequest) error {
	if len(up.GetEntities()) == 0 {
		return status.Error(codes.InvalidArgument, "certificates.entities is empty")
	}
	var (
		chain, trust string
		crls         [][]byte
		versions     = map[string]entityVersion{}
	)
	for i, e := range up.GetEntities() {
		var kind string
		switch x := e.GetEntity().(type) {
		case *certz.Entity_CertificateChain:
			kind = kindCertificate
			where := fmt.Sprintf("certificates.entities[%d].certificate_chain", i)
			b, err := chainPEM(where, x.CertificateChain)
			if err != nil {
				return err
			}
			chain = string(b)
		case *certz.Entity_TrustBundle:
			kind = kindTrustBundle
			where := fmt.Sprintf("certificates.entities[%d].trust_bundle", i)
			b, err := chainPEM(where, x.TrustBundle)
			if err != nil {
				return err
			}
			if trust, err = trustPEM(where, b); err != nil {
				return err
			}
		case *certz.Entity_TrustBundlePkcs7:
			kind = kindTrustBundle
			var err error
			if trust, err = trustPEM(fmt.Sprintf("certificates.entities[%d].trust_bundle_pkcs7", i), []byte(x.TrustBundlePkcs7.GetPkcs7Block())); err != nil {
				return err
			}
		case *certz.Entity_TrustBundlePcks7:
			kind = kindTrustBundle
			var err error
			if trust, err = trustPEM(fmt.Sprintf("certificates.entities[%d].trust_bundle_pcks7", i), []byte(x.TrustBundlePcks7.GetPkcs7Block())); err != nil {
				return err
			}
		case *certz.Entity_CertificateRevocationListBundle:
			kind = kindCRLBundle
			var err error
			if crls, err = crlDERs(fmt.Sprintf("certificates.entities[%d].certificate_revocation_list_bundle", i), x.CertificateRevocationListBundle); err != nil {
				return err
			}
		case *certz.Entity_AuthenticationPolicy:
			return status.Errorf(codes.Unimplemented, "certificates.entities[%d].authentication_policy: authentication policies are not supported; a certificate is accepted when it chains to a configured trusted CA", i)
		case *certz.Entity_ExistingEntity:
			return status.Errorf(codes.Unimplemented, "certificates.entities[%d].existing_entity: copying entities between profiles is not supported; upload the entity itself", i)
		default:
			return status.Errorf(codes.InvalidArgument, "certificates.entities[%d] is empty", i)
		}
		if _, dup := versions[kind]; dup {
			return status.Errorf(codes.InvalidArgument, "certificates.entities[%d]: a second %s in one upload", i, kind)
		}
		if v := e.GetVersion(); v != "" && !force {
			if cur, ok := r.s.version(r.profile, kind); ok && cur.Version == v {
				return status.Errorf(codes.AlreadyExists, "certificates.entities[%d]: version %q is the %s in force in profile %s; give a new version or set force_overwrite", i, v, kind, r.profile)
			}
		}
		versions[kind] = entityVersion{Version: e.GetVersion(), CreatedOn: e.GetCreatedOn()}
	}
	if trust != "" && !api.CanWrite(r.caller.Role) {
		return status.Errorf(codes.PermissionDenied, "user %s (role %s) may not upload a trust bundle: it changes the configuration (trusted-ca-certificate %s), which needs role admin", r.caller.User, r.caller.Role, r.profile)
	}
	if crls != nil && r.s.cfg.CRLs == nil {
		return status.Error(codes.Unimplemented, "certificate_revocation_list_bundle: this build cannot install CRL bundles; configure the CRL URLs under /authority/certificate-revocation-list")
	}
	if chain != "" {
		if _, err := r.engine(); err != nil {
			return err
		}
	}
	if trust != "" {
		if err := r.commitTrust(ctx, trust); err != nil {
			return err
		}
	}
	if crls != nil {
		undo, err := r.s.cfg.CRLs.InstallCRLs(ctx, r.profile, crls)
		if err != nil {
			return r.s.status(fmt.Errorf("certificate_revocation_list_bundle: %w", err))
		}
		r.crlUndo = append(r.crlUndo, undo)
	}
	if chain != "" {
		out, err := r.eng.Install(ctx, chain)
		if err != nil {
			return r.s.status(fmt.Errorf("certificate_chain: %w", err))
		}
		r.installed = true
		r.s.log.Info("certz: certificate installed; the client may test it before finalizing", "profile", r.profile, "name", r.name, "fingerprint", out.FingerprintSHA256, "user", r.caller.User)
		r.s.cfg.OnInstalled(r.name)
	}
	for k, v := range versions {
		r.versions[k] = v
	}
	return nil
}

// commitTrust replaces trusted-ca-certificate[name=profile] with content.
func (r *rotation) commitTrust(ctx context.Context, content string) error {
	if !r.trustSaved {
		if prev := r.s.cfg.Store.Running().GetAuthority().GetTrustedCaCertificate(r.profile); prev != nil {
			mode := "strict"
			if prev.GetValidationMode() == gen.PkiAuthority_ValidationMode_warn {
				mode = "warn"
			}
			r.trustPrev = &trustEntry{content: prev.GetContent(), mode: mode}
		}
		r.trustSaved = true
	}
	if err := r.setTrust(ctx, &trustEntry{content: content, mode: "strict"}, "trust bundle uploaded"); err != nil {
		return r.s.status(fmt.Errorf("trust_bundle (trusted-ca-certificate %s): %w", r.profile, err))
	}
	r.trustSet = true
	return nil
}

// setTrust commits the trusted CA entry of the profile (nil removes it).
func (r *rotation) setTrust(ctx context.Context, t *trustEntry, why string) error {
	path := &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}, {Name: "trusted-ca-certificate", Key: map[string]string{"name": r.profile}}}}
	edit := agent.Edit{Op: agent.OpRemove, Path: path}
	if t != nil {
		js, err := json.Marshal(map[string]string{"name": r.profile, "content": t.content, "validation-mode": t.mode})
		if err != nil {
			return err
		}
		edit = agent.Edit{Op: agent.OpReplace, Path: path, Value: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: js}}}
	}
	tx := r.s.cfg.Store.Begin(agent.Running)
	if err := tx.Apply(edit); err != nil {
		return err
	}
	_, err := r.s.cfg.Store.Commit(ctx, tx, agent.CommitOptions{
		User: r.caller.User, Owner: api.Owner{Protocol: "gnsi certz", Name: fmt.Sprintf("%s rotate %s", r.caller.User, r.profile)},
		Comment: fmt.Sprintf("gNSI certz Rotate of profile %s: %s", r.profile, why),
	})
	return err
}

func (r *rotation) finalize() {
	if r.eng != nil {
		if err := r.eng.Commit(); err != nil {
			r.s.log.Error("certz: rotation finalized, but cleaning up after it failed", "profile", r.profile, "err", err)
		}
	}
	if err := r.s.setVersions(r.profile, r.versions); err != nil {
		r.s.log.Error("certz: entity versions not saved", "profile", r.profile, "err", err)
	}
	r.s.log.Info("certz: Rotate finalized", "profile", r.profile, "name", r.name, "certificate", r.installed, "trust_bundle", r.trustSet, "crl_bundle", len(r.crlUndo) > 0, "user", r.caller.User)
}

// rollback undoes everything in reverse order.
func (r *rotation) rollback(ctx context.Context) {
	if r.profile == "" {
		return
	}
	var errs []error
	if r.eng != nil {
		errs = append(errs, r.eng.Rollback(ctx))
		if r.installed {
			r.s.cfg.OnInstalled(r.name)
		}
	}
	for i := len(r.crlUndo) - 1; i >= 0; i-- {
		errs = append(errs, r.crlUndo[i](ctx))
	}
	if r.trustSet {
		errs = append(errs, r.setTrust(ctx, r.trustPrev, "rolled back"))
	}
	if err := errors.Join(errs...); err != nil {
		r.s.log.Error("certz: Rotate not finalized, and its rollback failed", "profile", r.profile, "err", err)
		return
	}
	if r.eng != nil || r.trustSet || len(r.crlUndo) > 0 {
		r.s.log.Warn("certz: Rotate ended before finalize; everything it changed was rolled back", "profile", r.profile, "user", r.caller.User)
	}
}
