// Package tpm is the keystore backend whose keys live in a TPM 2.0: each key
// is created by the TPM under the owner-hierarchy storage root key, signs
// inside the TPM, and cannot be exported. Only its TPM-encrypted blob is
// kept on disk (DIR/NAME.tpmkey), so the key loads again after a restart.
//
// The storage root key (SRK) is the TCG reference ECC P-256 template,
// recreated for every operation and flushed with the key, so the store holds
// no TPM handle between calls and needs at most two of the TPM's transient
// object slots at a time.
package tpm

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/pki/keystore"
)

// Ext is the file name extension of a key blob.
const Ext = ".tpmkey"

const maxBlobSize = 64 << 10

// Retry policy for TPM_RC_RETRY, TPM_RC_YIELDED and TPM_RC_TESTING.
const (
	retries    = 5
	retryDelay = 10 * time.Millisecond
)

// Store is a keystore.Store in a TPM. It is safe for concurrent use; TPM
// commands are issued one sequence at a time. A TPM should be used by one
// Store at a time (without a resource manager, /dev/tpm0 or a TCP TPM, a
// Store flushes every transient object at start-up).
type Store struct {
	tpm transport.TPM
	dir string
	log *slog.Logger

	sem chan struct{} // held across a TPM command sequence

	names keystore.Reservations // being generated or renamed, not yet on disk
}

var _ keystore.Store = (*Store)(nil)

// New returns a Store over an open TPM (see Open) keeping key blobs in dir
// (created 0700 if needed). It flushes the transient objects a previous run
// left in the TPM and checks that the SRK can be created. The caller keeps
// ownership of tpm and closes it after the Store's last use. A nil logger
// discards.
func New(ctx context.Context, tpm transport.TPM, dir string, log *slog.Logger) (*Store, error) {
	if tpm == nil {
		return nil, errors.New("tpm keystore: no TPM given")
	}
	if dir == "" {
		return nil, errors.New("tpm keystore: no directory given")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := persist.MkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("tpm keystore %s: %w", dir, err)
	}
	if err := persist.CleanTemp(dir); err != nil {
		return nil, fmt.Errorf("tpm keystore %s: %w", dir, err)
	}
	s := &Store{
		tpm: tpm,
		dir: dir,
		log: log.With("keystore", "tpm"),
		sem: make(chan struct{}, 1),
	}
	if err := s.acquire(ctx); err != nil {
		return nil, fmt.Errorf("tpm keystore: %w", err)
	}
	defer s.release()
	n, err := s.flushTransient()
	if err != nil {
		return nil, fmt.Errorf("tpm keystore: flush leftover transient objects: %w", err)
	}
	if n > 0 {
		s.log.Info("flushed leftover transient TPM objects", "count", n)
	}
	srk, err := s.createSRK()
	if err != nil {
		return nil, fmt.Errorf("tpm keystore: %w", err)
	}
	s.flush(srk.ObjectHandle)
	return s, nil
}

// Kind implements keystore.Store.
func (s *Store) Kind() string { return "tpm" }

// Dir is the blob directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+Ext) }

func (s *Store) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wait for the TPM: %w", err)
	}
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the TPM: %w", ctx.Err())
	}
}

func (s *Store) release() { <-s.sem }

// execute runs a TPM command, retrying the warnings that ask for it.
func execute[R any](what string, f func() (*R, error)) (*R, error) {
	delay := retryDelay
	for i := 0; ; i++ {
		rsp, err := f()
		if err == nil {
			return rsp, nil
		}
		if i+1 >= retries || !(errors.Is(err, tpm2.TPMRCRetry) || errors.Is(err, tpm2.TPMRCYielded) || errors.Is(err, tpm2.TPMRCTesting)) {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		time.Sleep(delay)
		delay *= 2
	}
}

// flushTransient flushes every transient object in the TPM. Under a
// resource manager the list is this connection's, so usually empty.
func (s *Store) flushTransient() (int, error) {
	var handles []tpm2.TPMHandle
	next := uint32(tpm2.TPMHTTransient) << 24
	for {
		rsp, err := execute("TPM2_GetCapability(handles)", func() (*tpm2.GetCapabilityResponse, error) {
			return tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: next, PropertyCount: 64}.Execute(s.tpm)
		})
		if err != nil {
			return 0, err
		}
		l, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return 0, fmt.Errorf("TPM2_GetCapability(handles): %w", err)
		}
		for _, h := range l.Handle {
			if uint32(h)>>24 == uint32(tpm2.TPMHTTransient) {
				handles = append(handles, h)
			}
		}
		if !rsp.MoreData || len(l.Handle) == 0 {
			break
		}
		next = uint32(l.Handle[len(l.Handle)-1]) + 1
		if next>>24 != uint32(tpm2.TPMHTTransient) {
			break
		}
	}
	for _, h := range handles {
		if _, err := execute("TPM2_FlushContext", func() (*tpm2.FlushContextResponse, error) {
			return tpm2.FlushContext{FlushHandle: h}.Execute(s.tpm)
		}); err != nil {
			return 0, fmt.Errorf("handle %#x: %w", uint32(h), err)
		}
	}
	return len(handles), nil
}

// createSRK creates the storage root key. The caller flushes it.
func (s *Store) createSRK() (*tpm2.CreatePrimaryResponse, error) {
	return execute("create the storage root key (TPM2_CreatePrimary, owner hierarchy)", func() (*tpm2.CreatePrimaryResponse, error) {
		return tpm2.CreatePrimary{
			PrimaryHandle: tpm2.TPMRHOwner,
			InPublic:      tpm2.New2B(srkTemplate),
		}.Execute(s.tpm)
	})
}

// flush releases a transient handle; failures are logged, not returned,
// since the result the caller wanted is already in hand.
func (s *Store) flush(h tpm2.TPMHandle) {
	if _, err := execute("TPM2_FlushContext", func() (*tpm2.FlushContextResponse, error) {
		return tpm2.FlushContext{FlushHandle: h}.Execute(s.tpm)
	}); err != nil {
		s.log.Warn("could not flush a transient TPM object", "handle", fmt.Sprintf("%#x", uint32(h)), "err", err)
	}
}

// isUnsupported tells whether a TPM error says an algorithm, size, curve or
// scheme is not implemented.
func isUnsupported(err error) bool {
	for _, rc := range []tpm2.TPMRC{tpm2.TPMRCValue, tpm2.TPMRCKeySize, tpm2.TPMRCCurve, tpm2.TPMRCAsymmetric, tpm2.TPMRCScheme, tpm2.TPMRCHash, tpm2.TPMRCKDF, tpm2.TPMRCSymmetric} {
		if errors.Is(err, rc) {
			return true
		}
	}
	return false
}

// Generate implements keystore.Store. The key is created by the TPM
// (TPM2_Create under the SRK); a spec the TPM does not implement, such as
// RSA 4096 on most TPMs, fails with keystore.ErrUnsupported.
func (s *Store) Generate(ctx context.Context, name string, spec keystore.KeySpec) (crypto.Signer, error) {
	if err := keystore.ValidateName(name); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	tmpl, err := keyTemplate(spec)
	if err != nil {
		return nil, err
	}
	if err := s.names.Reserve(name, s.path(name)); err != nil {
		return nil, err
	}
	defer s.names.Release(name)

	b, err := s.create(ctx, tmpl, spec)
	if err != nil {
		return nil, fmt.Errorf("generate %s key %s in the TPM: %w", spec, name, err)
	}
	data, err := b.marshal()
	if err != nil {
		return nil, fmt.Errorf("generate %s key %s in the TPM: %w", spec, name, err)
	}
	if err := persist.WriteFileAtomic(s.path(name), data, persist.PrivateFile); err != nil {
		return nil, fmt.Errorf("store TPM key %s in %s: %w", name, s.dir, err)
	}
	k, err := s.newKey(name, b)
	if err != nil {
		return nil, err
	}
	s.log.Info("private key generated in the TPM", "name", name, "algorithm", spec.String())
	return k, nil
}

func (s *Store) create(ctx context.Context, tmpl tpm2.TPMTPublic, spec keystore.KeySpec) (*blob, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	// Ask first: TPM2_TestParms names an unsupported size or curve plainly.
	if _, err := execute("TPM2_TestParms", func() (*tpm2.TestParmsResponse, error) {
		return tpm2.TestParms{Parameters: tpm2.TPMTPublicParms{Type: tmpl.Type, Parameters: tmpl.Parameters}}.Execute(s.tpm)
	}); err != nil {
		if isUnsupported(err) {
			return nil, fmt.Errorf("%w: this TPM does not implement %s keys (%w)", keystore.ErrUnsupported, spec, err)
		}
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	srk, err := s.createSRK()
	if err != nil {
		return nil, err
	}
	defer s.flush(srk.ObjectHandle)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rsp, err := execute("TPM2_Create", func() (*tpm2.CreateResponse, error) {
		return tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     tpm2.New2B(tmpl),
		}.Execute(s.tpm)
	})
	if err != nil {
		if isUnsupported(err) {
			return nil, fmt.Errorf("%w: this TPM refused to create %s keys (%w)", keystore.ErrUnsupported, spec, err)
		}
		return nil, err
	}
	return &blob{public: rsp.OutPublic, private: rsp.OutPrivate}, nil
}

// readBlob reads and parses the blob of name.
func (s *Store) readBlob(name string) (*blob, error) {
	if err := keystore.ValidateName(name); err != nil {
		return nil, err
	}
	path := s.path(name)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key %s: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxBlobSize {
		return nil, fmt.Errorf("key %s: %s is not a regular file of at most %d bytes", name, path, maxBlobSize)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key %s: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	b, err := parseBlob(data)
	if err != nil {
		return nil, fmt.Errorf("key %s: %s: %w", name, path, err)
	}
	return b, nil
}

// Signer implements keystore.Store. It loads the key into the TPM once to
// check that the blob belongs to this TPM (it does not after a TPM clear or
// on another machine).
func (s *Store) Signer(ctx context.Context, name string) (crypto.Signer, error) {
	b, err := s.readBlob(name)
	if err != nil {
		return nil, err
	}
	k, err := s.newKey(name, b)
	if err != nil {
		return nil, err
	}
	if err := s.acquire(ctx); err != nil {
		return nil, fmt.Errorf("load TPM key %s: %w", name, err)
	}
	defer s.release()
	err = s.withKey(b, func(tpm2.NamedHandle) error { return nil })
	if err != nil {
		return nil, fmt.Errorf("load TPM key %s: %w", name, err)
	}
	return k, nil
}

// withKey recreates the SRK, loads b under it, runs f and flushes both. The
// caller holds the semaphore.
func (s *Store) withKey(b *blob, f func(key tpm2.NamedHandle) error) error {
	srk, err := s.createSRK()
	if err != nil {
		return err
	}
	defer s.flush(srk.ObjectHandle)
	rsp, err := execute("TPM2_Load", func() (*tpm2.LoadResponse, error) {
		return tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     b.public,
			InPrivate:    b.private,
		}.Execute(s.tpm)
	})
	if err != nil {
		if errors.Is(err, tpm2.TPMRCIntegrity) || errors.Is(err, tpm2.TPMRCBinding) || errors.Is(err, tpm2.TPMRCSize) {
			return fmt.Errorf("%w (the key was created by another TPM, or before this TPM was cleared)", err)
		}
		return err
	}
	defer s.flush(rsp.ObjectHandle)
	return f(tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name})
}

// Public implements keystore.Store. It reads the blob only.
func (s *Store) Public(name string) (crypto.PublicKey, error) {
	b, err := s.readBlob(name)
	if err != nil {
		return nil, err
	}
	k, err := s.newKey(name, b)
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

// Delete implements keystore.Store. Removing the blob destroys the key: it
// never exists in the TPM beyond one operation.
func (s *Store) Delete(name string) error {
	if err := keystore.ValidateName(name); err != nil {
		return err
	}
	err := persist.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete key %s: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete key %s: %w", name, err)
	}
	s.log.Info("TPM key deleted", "name", name)
	return nil
}

// Names implements keystore.Store.
func (s *Store) Names() ([]string, error) {
	return keystore.List(s.dir, Ext)
}

// Created is when key name was written to the store.
func (s *Store) Created(name string) (time.Time, error) {
	fi, err := os.Stat(s.path(name))
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}
