package netconf

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/pkiagent/pkiagent/internal/persist"
)

// Files the server keeps in Config.StateDir.
const (
	// HostKeyFile holds the SSH host key (ed25519, OpenSSH format, 0600),
	// created on first start and reused after.
	HostKeyFile = "ssh_host_ed25519_key"
	// AuthorizedKeysFile lists the public keys accepted for public-key
	// authentication, in OpenSSH authorized_keys format. It is read at each
	// authentication, so edits take effect at once.
	AuthorizedKeysFile = "authorized_keys"
)

// maxAuthorizedKeysSize bounds the authorized_keys file.
const maxAuthorizedKeysSize = 1 << 20

// loadOrCreateHostKey returns the host key in dir, creating it first if
// there is none.
func loadOrCreateHostKey(dir string, log *slog.Logger) (ssh.Signer, error) {
	path := filepath.Join(dir, HostKeyFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("netconf: SSH host key is readable by other users; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
		}
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("parse SSH host key %s: %w", path, err)
		}
		return signer, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read SSH host key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory for the SSH host key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate SSH host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "pki-agent NETCONF host key")
	if err != nil {
		return nil, fmt.Errorf("encode SSH host key: %w", err)
	}
	if err := persist.WriteFileAtomic(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("write SSH host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("SSH host key signer: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("SSH host public key: %w", err)
	}
	if err := persist.WriteFileAtomic(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return nil, fmt.Errorf("write SSH host public key: %w", err)
	}
	log.Info("netconf: created SSH host key", "path", path, "fingerprint", ssh.FingerprintSHA256(sshPub))
	return signer, nil
}

// authorizedKey reports whether key is listed in the authorized_keys file of
// dir for user. A line may restrict the users a key logs in as with the
// option principals="alice,bob"; a line without it admits any user name
// (the role then comes from the user name).
func authorizedKey(dir, user string, key ssh.PublicKey) (bool, error) {
	f, err := os.Open(filepath.Join(dir, AuthorizedKeysFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open authorized keys: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAuthorizedKeysSize+1))
	if err != nil {
		return false, fmt.Errorf("read authorized keys: %w", err)
	}
	if len(data) > maxAuthorizedKeysSize {
		return false, fmt.Errorf("authorized keys file is over %d bytes", maxAuthorizedKeysSize)
	}
	want := key.Marshal()
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		pk, _, options, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil || !bytes.Equal(pk.Marshal(), want) {
			continue
		}
		if principalsAllow(options, user) {
			return true, nil
		}
	}
	return false, nil
}

func principalsAllow(options []string, user string) bool {
	for _, o := range options {
		name, value, ok := strings.Cut(o, "=")
		if !ok || !strings.EqualFold(name, "principals") {
			continue
		}
		return slices.Contains(strings.Split(strings.Trim(value, `"`), ","), user)
	}
	return true
}
