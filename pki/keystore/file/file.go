// Package file is the keystore backend that keeps each private key as a
// PKCS #8 PEM file, DIR/NAME.key (mode 0600, directory 0700), written
// atomically.
package file

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/pki/keystore"
)

// Ext is the file name extension of a key file.
const Ext = ".key"

// pemType is the PEM block type of PKCS #8.
const pemType = "PRIVATE KEY"

// maxFileSize bounds what is read from a key file (an RSA 4096 PKCS #8 PEM is
// about 3.3 KB).
const maxFileSize = 64 << 10

// Store is a keystore.Store over a directory. It is safe for concurrent use;
// a directory must be used by one Store (one process) at a time.
type Store struct {
	dir string
	log *slog.Logger

	names keystore.Reservations // being generated or renamed, not yet on disk
}

var _ keystore.Store = (*Store)(nil)

// New opens (creating it with mode 0700 if needed) the key directory dir and
// removes temporary files a crash left there. A nil logger discards.
func New(dir string, log *slog.Logger) (*Store, error) {
	if dir == "" {
		return nil, errors.New("file keystore: no directory given")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := persist.MkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("file keystore %s: %w", dir, err)
	}
	if err := persist.CleanTemp(dir); err != nil {
		return nil, fmt.Errorf("file keystore %s: %w", dir, err)
	}
	return &Store{dir: dir, log: log.With("keystore", "file")}, nil
}

// Kind implements keystore.Store.
func (s *Store) Kind() string { return "file" }

// Dir is the key directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+Ext) }

// Generate implements keystore.Store.
func (s *Store) Generate(ctx context.Context, name string, spec keystore.KeySpec) (crypto.Signer, error) {
	if err := keystore.ValidateName(name); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("generate key %s: %w", name, err)
	}
	if err := s.names.Reserve(name, s.path(name)); err != nil {
		return nil, err
	}
	defer s.names.Release(name)

	key, err := newKey(spec)
	if err != nil {
		return nil, fmt.Errorf("generate %s key %s: %w", spec, name, err)
	}
	// RSA generation may take seconds; do not write a key nobody waits for.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("generate key %s: %w", name, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode %s key %s as PKCS #8: %w", spec, name, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	clear(der)
	err = persist.WriteFileAtomic(s.path(name), data, persist.PrivateFile)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("store key %s in %s: %w", name, s.dir, err)
	}
	s.log.Info("private key generated", "name", name, "algorithm", spec.String())
	return &signer{name: name, alg: spec.String(), key: key}, nil
}

func newKey(spec keystore.KeySpec) (crypto.Signer, error) {
	switch spec.Algorithm {
	case keystore.AlgorithmRSA:
		return rsa.GenerateKey(rand.Reader, spec.RSABits)
	case keystore.AlgorithmEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	curve, err := spec.EllipticCurve()
	if err != nil {
		return nil, err
	}
	return ecdsa.GenerateKey(curve, rand.Reader)
}

// Signer implements keystore.Store.
func (s *Store) Signer(ctx context.Context, name string) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load key %s: %w", name, err)
	}
	return s.load(name)
}

// Public implements keystore.Store.
func (s *Store) Public(name string) (crypto.PublicKey, error) {
	k, err := s.load(name)
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

func (s *Store) load(name string) (*signer, error) {
	if err := keystore.ValidateName(name); err != nil {
		return nil, err
	}
	path := s.path(name)
	data, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key %s: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	defer clear(data)
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemType || strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("key %s: %s does not hold exactly one PEM %q block", name, path, pemType)
	}
	defer clear(block.Bytes)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %s is not a PKCS #8 private key: %w", name, path, err)
	}
	sg, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s: %w: %T", name, keystore.ErrUnsupported, key)
	}
	spec, err := keystore.SpecOf(sg.Public())
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	return &signer{name: name, alg: spec.String(), key: sg}, nil
}

// readKeyFile reads a regular file of bounded size, refusing symlinks and
// other file types.
func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("%s is %d bytes, more than a key file can be (%d)", path, fi.Size(), maxFileSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFileSize))
}

// Delete implements keystore.Store.
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
	s.log.Info("private key deleted", "name", name)
	return nil
}

// Names implements keystore.Store.
func (s *Store) Names() ([]string, error) {
	return keystore.List(s.dir, Ext)
}

// signer is the handle Generate and Signer return. It hides the private key
// (no exported field, no accessor) and prints without it.
type signer struct {
	name string
	alg  string
	key  crypto.Signer
}

func (k *signer) Public() crypto.PublicKey { return k.key.Public() }

func (k *signer) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := k.key.Sign(r, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("sign with key %s: %w", k.name, err)
	}
	return sig, nil
}

// String describes the key without its private part.
func (k *signer) String() string { return fmt.Sprintf("file key %s (%s)", k.name, k.alg) }

// GoString keeps %#v from printing the private key.
func (k *signer) GoString() string { return k.String() }

// Created is when key name was written to the store.
func (s *Store) Created(name string) (time.Time, error) {
	fi, err := os.Stat(s.path(name))
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}
