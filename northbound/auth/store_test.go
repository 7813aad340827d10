package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		desc, user, pw, want string
	}{
		{"good", "alice", "correct horse", ""},
		{"eight characters", "alice", "Ab3$efgh", ""},
		{"multi-byte characters count once", "alice", "пароль-пароль", ""},
		{"empty", "alice", "", "empty"},
		{"seven characters", "alice", "Ab3$efg", "has 7 characters"},
		{"129 characters", "alice", strings.Repeat("ab", 64) + "c", "has 129 characters"},
		{"the user name", "alice-admin", "ALICE-ADMIN", "user name"},
		{"one character repeated", "alice", "zzzzzzzzzz", "repeated"},
		{"a control character", "alice", "abc\x00defgh", "control character"},
		{"a newline", "alice", "abcd\nefgh", "control character"},
		{"not UTF-8", "alice", "abcdefgh\xff", "UTF-8"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := CheckPassword(tc.user, tc.pw)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrWeakPassword) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), PasswordRule) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzCheckPassword: any input gets a verdict without a panic, and a
// refusal never quotes the password.
func FuzzCheckPassword(f *testing.F) {
	for _, s := range []string{"", "short", "correct horse", "zzzzzzzz", "a\x00bcdefgh", "\xff\xfe"} {
		f.Add("alice", s)
	}
	f.Fuzz(func(t *testing.T, user, pw string) {
		err := CheckPassword(user, pw)
		if err != nil && len(pw) >= 4 && strings.Contains(err.Error(), pw) && !strings.Contains(PasswordRule, pw) {
			t.Fatalf("the error quotes the password: %v", err)
		}
	})
}
