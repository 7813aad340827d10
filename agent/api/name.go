package api

import "fmt"

// MaxNameLen is the longest name of an object the engine keeps by name: a
// key, a certificate, a certz profile.
const MaxNameLen = 64

// Rotation suffixes: while a certz Rotate replaces the key of NAME, the new
// key waits as NAME+RotateNewSuffix and the key it replaces as
// NAME+RotateOldSuffix. A name a rotation may act on (a certz profile id)
// is at most MaxRotatedNameLen long, so that both fit in MaxNameLen.
const (
	RotateNewSuffix   = ".certz-new"
	RotateOldSuffix   = ".certz-old"
	MaxRotatedNameLen = MaxNameLen - len(RotateNewSuffix)
)

// CheckName is the one rule for object names, used by the rpcs, the key
// stores and certz: 1 to max characters of A-Z a-z 0-9 . _ -, and not "."
// or ".." (a name is a file name in the key store). what names the field in
// the error, which matches ErrInvalid and quotes the name only when it
// holds nothing but allowed characters.
func CheckName(what, name string, max int) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: %s is empty; it must be 1 to %d letters, digits, dots, underscores or hyphens", ErrInvalid, what, max)
	case len(name) > max:
		return fmt.Errorf("%w: %s is %d characters long; at most %d", ErrInvalid, what, len(name), max)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("%w: %s: character %q at offset %d is not one of A-Z a-z 0-9 . _ -", ErrInvalid, what, c, i)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: %s %q is not a name (it names a directory)", ErrInvalid, what, name)
	}
	return nil
}
