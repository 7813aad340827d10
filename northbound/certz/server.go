package certz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnsi/certz"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/northbound/gnmi"
)

// ServerProfile is the SSL profile of the gNMI/gNSI server itself (the
// gNxI profile): it always exists and cannot be deleted.
const ServerProfile = "gNxI"

// Engine is what certz needs of the PKI engine.
type Engine interface {
	// BeginRotation starts a rotation of the managed certificate name.
	BeginRotation(name string, c api.Caller) (Rotation, error)
	// KeyStorage is where a key generated for name would go ("file" or
	// "tpm").
	KeyStorage(name string) string
}

// Rotation is one rotation of a managed certificate on the engine. Errors
// wrap agent.ErrInvalid (bad input, including the import checks) or
// agent.ErrMissing (no key); they never carry private key material.
type Rotation interface {
	// GenerateCSR generates a key on the box, aside, and returns a PEM CSR
	// signed by it.
	GenerateCSR(ctx context.Context, key api.GenerateKeyInput, in api.GenerateCSRInput) (string, error)
	// Install runs the three import checks and makes the certificate (with
	// the key generated before, if any) the one in force.
	Install(ctx context.Context, certPEM string) (api.ImportCertificateOutput, error)
	// Commit keeps what was installed; Rollback restores what was there.
	Commit() error
	Rollback(ctx context.Context) error
}

// CRLInstaller installs uploaded CRL bundles. It is optional: without it
// CRL bundles are refused (Unimplemented).
type CRLInstaller interface {
	// InstallCRLs verifies each CRL (DER) against the trusted CAs as fetched
	// CRLs are, and puts them in force as the bundle of profile, replacing
	// its previous bundle. undo restores the previous bundle.
	InstallCRLs(ctx context.Context, profile string, ders [][]byte) (undo func(context.Context) error, err error)
}

// Config builds a Server.
type Config struct {
	Engine Engine
	// CRLs, when set, installs CRL bundles.
	CRLs CRLInstaller
	// Store is where trust bundles are committed (as trusted-ca-certificate
	// entries named after their profile).
	Store *agent.Store
	// ProfilesFile keeps the profiles added with AddProfile and the entity
	// versions of every profile (STATE-DIR/certz-profiles.json).
	ProfilesFile string
	// ServerCertName is the managed certificate the gNMI server serves
	// (--tls-cert-name); the gNxI profile rotates it. Empty: the server
	// certificate is not managed by the agent and the gNxI profile cannot
	// be rotated.
	ServerCertName string
	// OnInstalled is called after the certificate in force of name changed
	// (installed or rolled back), so that a server using it reloads it.
	OnInstalled func(name string)
	Logger      *slog.Logger
}

// Server implements certz.CertzServer.
type Server struct {
	certz.UnimplementedCertzServer
	cfg Config
	log *slog.Logger

	// busy admits one Rotate at a time, as the certz specification asks.
	busy sync.Mutex

	mu       sync.Mutex
	profiles map[string]*profile
}

// profile is what is persisted of an SSL profile: the versions of its
// entities as the credential manager sent them.
type profile struct {
	Versions map[string]entityVersion `json:"versions,omitempty"`
}

type entityVersion struct {
	Version   string `json:"version"`
	CreatedOn uint64 `json:"created_on"`
}

// Entity kinds, as keys of profile.Versions.
const (
	kindCertificate = "certificate"
	kindTrustBundle = "trust-bundle"
	kindCRLBundle   = "crl-bundle"
)

// New returns a server that has loaded cfg.ProfilesFile.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil || cfg.Store == nil {
		return nil, errors.New("certz: an engine and a store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.OnInstalled == nil {
		cfg.OnInstalled = func(string) {}
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("service", "certz"), profiles: map[string]*profile{}}
	if cfg.ProfilesFile != "" {
		b, err := os.ReadFile(cfg.ProfilesFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("certz profiles: %w", err)
		default:
			if err := json.Unmarshal(b, &s.profiles); err != nil {
				return nil, fmt.Errorf("certz profiles %s: %w; move it aside to start with the gNxI profile only", cfg.ProfilesFile, err)
			}
		}
	}
	if s.profiles[ServerProfile] == nil {
		s.profiles[ServerProfile] = &profile{}
	}
	return s, nil
}

// Register adds the certz service to g.
func (s *Server) Register(g *grpc.Server) { certz.RegisterCertzServer(g, s) }

// saveLocked writes the profiles; s.mu must be held.
func (s *Server) saveLocked() error {
	if s.cfg.ProfilesFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(s.profiles, "", "  ")
	if err != nil {
		return err
	}
	if err := persist.WriteFileAtomic(s.cfg.ProfilesFile, b, 0o600); err != nil {
		return fmt.Errorf("save certz profiles: %w", err)
	}
	return nil
}

// certName is the managed certificate a profile rotates.
func (s *Server) certName(id string) (string, error) {
	if id == ServerProfile {
		if s.cfg.ServerCertName == "" {
			return "", status.Errorf(codes.FailedPrecondition, "profile %s: the gNMI server certificate is not managed by the agent; start pki-agent with --tls-cert-name NAME to rotate it with certz", ServerProfile)
		}
		return s.cfg.ServerCertName, nil
	}
	return id, nil
}

func caller(ctx context.Context, may func(string) bool, what string) (api.Caller, error) {
	c, ok := gnmi.CallerFrom(ctx)
	if !ok {
		return api.Caller{}, status.Error(codes.Unauthenticated, "authentication required")
	}
	if !may(c.Role) {
		return api.Caller{}, status.Errorf(codes.PermissionDenied, "user %s (role %s) may not %s", c.User, c.Role, what)
	}
	return c.Agent(), nil
}

// checkProfileID validates a profile id field.
func checkProfileID(field, id string) error {
	if id == "" {
		return status.Errorf(codes.InvalidArgument, "%s is empty: name the SSL profile (%s is the gNMI server's)", field, ServerProfile)
	}
	if id != ServerProfile {
		// The one object-name rule, leaving room for the suffix a
		// rotation gives the key it generates.
		if err := api.CheckName(field, id, api.MaxRotatedNameLen); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
	}
	return nil
}

// GetProfileList lists the SSL profiles.
func (s *Server) GetProfileList(ctx context.Context, _ *certz.GetProfileListRequest) (*certz.GetProfileListResponse, error) {
	if _, err := caller(ctx, api.CanRead, "read the certz profiles"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.profiles))
	for id := range s.profiles {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	sort.Strings(ids)
	return &certz.GetProfileListResponse{SslProfileIds: ids}, nil
}

// AddProfile adds an empty profile; its certificate is the managed
// certificate of the same name.
func (s *Server) AddProfile(ctx context.Context, req *certz.AddProfileRequest) (*certz.AddProfileResponse, error) {
	c, err := caller(ctx, api.CanRunRPC, "add certz profiles")
	if err != nil {
		return nil, err
	}
	id := req.GetSslProfileId()
	if err := checkProfileID("ssl_profile_id", id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.profiles[id] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "profile %s exists", id)
	}
	s.profiles[id] = &profile{}
	if err := s.saveLocked(); err != nil {
		delete(s.profiles, id)
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.log.Info("certz profile added", "profile", id, "user", c.User)
	return &certz.AddProfileResponse{}, nil
}

// DeleteProfile forgets a profile. Its key, certificate and trusted CA
// entry stay (delete them through the configuration and rpcs).
func (s *Server) DeleteProfile(ctx context.Context, req *certz.DeleteProfileRequest) (*certz.DeleteProfileResponse, error) {
	c, err := caller(ctx, api.CanRunRPC, "delete certz profiles")
	if err != nil {
		return nil, err
	}
	id := req.GetSslProfileId()
	if err := checkProfileID("ssl_profile_id", id); err != nil {
		return nil, err
	}
	if id == ServerProfile {
		return nil, status.Errorf(codes.FailedPrecondition, "profile %s is the gNMI server's own and cannot be deleted", ServerProfile)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.profiles[id]
	if p == nil {
		return nil, status.Errorf(codes.NotFound, "profile %s does not exist", id)
	}
	delete(s.profiles, id)
	if err := s.saveLocked(); err != nil {
		s.profiles[id] = p
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.log.Info("certz profile deleted", "profile", id, "user", c.User)
	return &certz.DeleteProfileResponse{}, nil
}

// CanGenerateCSR answers whether Rotate would generate a key and CSR for
// the parameters.
func (s *Server) CanGenerateCSR(ctx context.Context, req *certz.CanGenerateCSRRequest) (*certz.CanGenerateCSRResponse, error) {
	if _, err := caller(ctx, api.CanRead, "query certz"); err != nil {
		return nil, err
	}
	if req.GetParams() == nil {
		return nil, status.Error(codes.InvalidArgument, "params is empty: give at least csr_suite and common_name")
	}
	if req.GetParams().GetCsrSuite() == certz.CSRSuite_CSRSUITE_CIPHER_UNSPECIFIED {
		return nil, status.Error(codes.InvalidArgument, "params.csr_suite is unspecified")
	}
	_, _, err := csrInput(req.GetParams())
	return &certz.CanGenerateCSRResponse{CanGenerate: err == nil}, nil
}

// GetIntegrityManifest is out of scope.
func (s *Server) GetIntegrityManifest(context.Context, *certz.GetIntegrityManifestRequest) (*certz.GetIntegrityManifestResponse, error) {
	return nil, status.Error(codes.Unimplemented, "GetIntegrityManifest: this agent provides no TCG reference integrity manifest")
}

// setVersions records entity versions of profile id after a finalized
// rotation.
func (s *Server) setVersions(id string, v map[string]entityVersion) error {
	if len(v) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.profiles[id]
	if p == nil {
		return nil // deleted meanwhile
	}
	if p.Versions == nil {
		p.Versions = map[string]entityVersion{}
	}
	for k, ev := range v {
		p.Versions[k] = ev
	}
	return s.saveLocked()
}

// version returns the version in force of an entity kind of profile id.
func (s *Server) version(id, kind string) (entityVersion, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.profiles[id]
	if p == nil {
		return entityVersion{}, false
	}
	v, ok := p.Versions[kind]
	return v, ok
}

func (s *Server) exists(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profiles[id] != nil
}

// status maps a datastore or engine error by the one gRPC mapping.
func (s *Server) status(err error) error { return gnmi.Status(s.log, err) }
