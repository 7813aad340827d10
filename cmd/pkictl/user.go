package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/term"
)

// Users are configuration (SPEC.md "Users"): /system/aaa/user[name] with
// role and password (hashed by the agent at commit, never read back). Each
// command is one gNMI Set, so one commit.
var userCommands = []command{
	{words: "user add", args: "NAME --role admin|operator|viewer", summary: "add a user (password from env PKICTL_NEW_PASSWORD, stdin or a prompt)", run: userAdd},
	{words: "user passwd", args: "NAME", summary: "change a user's password (from env PKICTL_NEW_PASSWORD, stdin or a prompt)", run: userPasswd},
	{words: "user delete", args: "NAME", summary: "delete a user", run: userDelete},
	{words: "user list", summary: "users and their roles", run: userList},
}

var roles = []string{"admin", "operator", "viewer"}

// minPassword is the shortest password pkictl sends (the agent has its own
// rule too).
const minPassword = 8

// newPassword reads the new password of user from env, a terminal prompt
// (twice) or the first line of stdin.
func (e *env) newPassword(user string) (string, error) {
	pw := e.getenv("PKICTL_NEW_PASSWORD")
	if pw == "" {
		if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			fmt.Fprintf(e.stderr, "New password for %s: ", user)
			a, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(e.stderr)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(e.stderr, "Again: ")
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(e.stderr)
			if err != nil {
				return "", err
			}
			if string(a) != string(b) {
				return "", usagef("the two passwords differ")
			}
			pw = string(a)
		} else {
			line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
			if err != nil && err != io.EOF {
				return "", err
			}
			pw = strings.TrimRight(line, "\r\n")
		}
	}
	switch {
	case pw == "":
		return "", usagef("no password for %s: set env PKICTL_NEW_PASSWORD or give it on stdin", clip(user))
	case len(pw) < minPassword:
		return "", usagef("the password of %s is too weak: at least %d characters", clip(user), minPassword)
	case strings.EqualFold(pw, user):
		return "", usagef("the password of %s is too weak: it is the user name", clip(user))
	}
	return pw, nil
}

func userPath(name string) *gpb.Path {
	return &gpb.Path{Elem: []*gpb.PathElem{{Name: "system"}, {Name: "aaa"}, {Name: "user", Key: map[string]string{"name": name}}}}
}

func (e *env) setUser(ctx context.Context, name string, leaves map[string]string) error {
	if err := e.needPassword(); err != nil {
		return err
	}
	var ups []*gpb.Update
	for _, k := range sortedKeys(leaves) {
		p := userPath(name)
		p.Elem = append(p.Elem, &gpb.PathElem{Name: k})
		b, _ := json.Marshal(leaves[k])
		ups = append(ups, &gpb.Update{Path: p, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: b}}})
	}
	return e.c.set(ctx, &gpb.SetRequest{Update: ups})
}

func userAdd(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	role := fs.String("role", "", "admin (everything), operator (read and the PKI operations) or viewer (read)")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkName("user", pos[0]); err != nil {
		return err
	}
	if !slices.Contains(roles, *role) {
		return usagef("--role %q: admin, operator or viewer", clip(*role))
	}
	pw, err := e.newPassword(pos[0])
	if err != nil {
		return err
	}
	if err := e.setUser(ctx, pos[0], map[string]string{"role": *role, "password": pw}); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "user %s added (%s)\n", pos[0], *role)
	return nil
}

func userPasswd(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("user passwd", flag.ContinueOnError), args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkName("user", pos[0]); err != nil {
		return err
	}
	pw, err := e.newPassword(pos[0])
	if err != nil {
		return err
	}
	if err := e.setUser(ctx, pos[0], map[string]string{"password": pw}); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "password of %s changed\n", pos[0])
	return nil
}

func userDelete(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("user delete", flag.ContinueOnError), args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkName("user", pos[0]); err != nil {
		return err
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	if err := e.c.set(ctx, &gpb.SetRequest{Delete: []*gpb.Path{userPath(pos[0])}}); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "user %s deleted\n", pos[0])
	return nil
}

type user struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func userList(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(flag.NewFlagSet("user list", flag.ContinueOnError), args, 0, 0); err != nil {
		return err
	}
	var users []user
	if err := e.getInto(ctx, "/system/aaa", "user", &users); err != nil {
		return err
	}
	slices.SortFunc(users, func(a, b user) int { return strings.Compare(a.Name, b.Name) })
	return e.emit(view{data: map[string]any{"user": users}, render: func(w io.Writer, width int) {
		t := &table{headers: []string{"NAME", "ROLE"}}
		for _, u := range users {
			t.add(u.Name, stripModule(u.Role))
		}
		t.render(w, width)
	}})
}
