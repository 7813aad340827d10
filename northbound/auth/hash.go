package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrHash: a password hash is in no format we know, or its parameters are
// out of bounds.
var ErrHash = errors.New("unsupported password hash")

// Parameters of the argon2id hashes HashPassword makes (OWASP's minimum
// recommendation: 19 MiB, 2 passes, 1 lane).
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Bounds on the parameters accepted from a users file, so a hostile file
// cannot make one login take gigabytes or minutes.
const (
	maxArgonMemory  = 1 << 20 // KiB (1 GiB)
	maxArgonTime    = 16
	maxArgonThreads = 16
)

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

type parsedHash struct {
	bcrypt bool
	argon  argonParams
}

func parseHash(h string) (parsedHash, error) {
	switch {
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return parsedHash{}, fmt.Errorf("%w: bcrypt: %w", ErrHash, err)
		}
		return parsedHash{bcrypt: true}, nil
	case strings.HasPrefix(h, "$argon2id$"):
		p, err := parseArgon(h)
		if err != nil {
			return parsedHash{}, err
		}
		return parsedHash{argon: p}, nil
	case h == "":
		return parsedHash{}, fmt.Errorf("%w: empty hash", ErrHash)
	}
	return parsedHash{}, fmt.Errorf("%w: want bcrypt ($2a$, $2b$) or argon2id ($argon2id$v=19$m=...,t=...,p=...$salt$hash)", ErrHash)
}

// parseArgon reads $argon2id$v=19$m=M,t=T,p=P$SALT$HASH (salt and hash in
// unpadded standard base64, as the reference implementation writes them).
func parseArgon(h string) (argonParams, error) {
	bad := func(why string) (argonParams, error) {
		return argonParams{}, fmt.Errorf("%w: argon2id: %s", ErrHash, why)
	}
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want $argon2id$v=19$m=...,t=...,p=...$salt$hash")
	}
	if parts[2] != "v=19" {
		return bad("version " + parts[2] + " is not v=19")
	}
	var p argonParams
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return bad("parameters must be m=...,t=...,p=...")
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("parameter " + k + " is not a number")
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return bad("p is too large")
			}
			p.threads = uint8(n)
		default:
			return bad("unknown parameter " + k)
		}
	}
	switch {
	case p.memory < 8 || p.memory > maxArgonMemory:
		return bad(fmt.Sprintf("m must be 8..%d KiB", maxArgonMemory))
	case p.time < 1 || p.time > maxArgonTime:
		return bad(fmt.Sprintf("t must be 1..%d", maxArgonTime))
	case p.threads < 1 || p.threads > maxArgonThreads:
		return bad(fmt.Sprintf("p must be 1..%d", maxArgonThreads))
	}
	var err error
	if p.salt, err = b64(parts[4]); err != nil || len(p.salt) < 8 {
		return bad("salt is not base64 of at least 8 bytes")
	}
	if p.key, err = b64(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return bad("hash is not base64 of 16..64 bytes")
	}
	return p, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// verify checks password against hash h.
func verify(h, password string) error {
	p, err := parseHash(h)
	if err != nil {
		return err
	}
	if p.bcrypt {
		if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(password)); err != nil {
			return ErrBadCredentials
		}
		return nil
	}
	a := p.argon
	got := argon2.IDKey([]byte(password), a.salt, a.time, a.memory, a.threads, uint32(len(a.key)))
	if subtle.ConstantTimeCompare(got, a.key) != 1 {
		return ErrBadCredentials
	}
	return nil
}

// HashPassword returns an argon2id PHC string for password, for the users
// file.
func HashPassword(password string) (string, error) { return hashWith(nil, password) }

// dummyHash returns a hash in HashPassword's format that no password
// matches (a random salt and a random key): verifying a password against
// it costs what verifying against a real hash costs, without hashing
// anything to make it.
func dummyHash(r io.Reader) (string, error) {
	b := make([]byte, argonSaltLen+argonKeyLen)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("users: reading randomness: %w", err)
	}
	return phc(b[:argonSaltLen], b[argonSaltLen:]), nil
}

func phc(salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func hashWith(r io.Reader, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", fmt.Errorf("hashing a password: reading randomness: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return phc(salt, key), nil
}
