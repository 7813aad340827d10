package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

var configCommands = []command{
	{words: "config show", args: "[PATH] [--candidate]", summary: "the running (or candidate) configuration as PATH = VALUE lines", run: configShow},
	{words: "config set", args: "PATH [VALUE|@FILE] [--commit]", summary: "set a leaf (or create a list entry) in the candidate; --commit commits it at once", run: configSet},
	{words: "config delete", args: "PATH [--commit]", summary: "delete a node from the candidate; --commit commits it at once", run: configDelete},
	{words: "config diff", summary: "what a commit of the candidate would change", run: configDiff},
	{words: "config commit", args: "[--confirmed SECONDS]", summary: "show the diff and commit the candidate; --confirmed rolls back unless confirmed in time", run: configCommit},
	{words: "config confirm", summary: "confirm the pending confirmed commit", run: configConfirm},
	{words: "config rollback", args: "[N]", summary: "N: make the configuration of commit N (see show commits) running again, as a new commit; without N: roll back the pending confirmed commit now", run: configRollback},
	{words: "config discard", summary: "drop the candidate's uncommitted edits", run: configDiscard},
}

// persistID names the confirmed commit of this user across pkictl runs
// (each run is a NETCONF session of its own: RFC 6241 persist).
func (e *env) persistID() string { return "pkictl-" + e.conn.user }

// configLines reads a datastore over NETCONF and flattens it to sorted
// "PATH = VALUE" lines.
func (e *env) configLines(ctx context.Context, ds string) ([]string, error) {
	if err := e.needPassword(); err != nil {
		return nil, err
	}
	body, err := e.c.rpc(ctx, "<get-config><source><"+ds+"/></source></get-config>")
	if err != nil {
		return nil, err
	}
	lines, err := flatten(body)
	if err != nil {
		return nil, fmt.Errorf("the agent's %s configuration does not parse: %w", ds, err)
	}
	return lines, nil
}

// listKeys are the key leaves of the configuration's lists (the rest use
// name).
var listKeys = map[string]string{"certificate-revocation-list": "url", "learned-source": "url"}

type xmlNode struct {
	XMLName  xml.Name
	Children []xmlNode `xml:",any"`
	Text     string    `xml:",chardata"`
}

// flatten turns <data> into path lines; a list entry's path carries its key.
func flatten(body string) ([]string, error) {
	var data xmlNode
	if err := xml.Unmarshal([]byte("<data>"+body+"</data>"), &data); err != nil {
		return nil, err
	}
	root := data.Children
	if len(root) == 1 && root[0].XMLName.Local == "data" {
		root = root[0].Children
	}
	var out []string
	var walk func(prefix string, n xmlNode)
	walk = func(prefix string, n xmlNode) {
		name := n.XMLName.Local
		if len(n.Children) == 0 {
			out = append(out, prefix+"/"+name+" = "+valueText(n.Text))
			return
		}
		key := listKeys[name]
		if key == "" {
			key = "name"
		}
		p := prefix + "/" + name
		isEntry := false
		for _, c := range n.Children {
			if c.XMLName.Local == key && len(c.Children) == 0 {
				p += "[" + key + "=" + strings.ReplaceAll(c.Text, "]", `\]`) + "]"
				isEntry = true
				break
			}
		}
		if isEntry {
			out = append(out, p)
		}
		for _, c := range n.Children {
			if isEntry && c.XMLName.Local == key {
				continue
			}
			walk(p, c)
		}
	}
	for _, n := range root {
		walk("", n)
	}
	slices.Sort(out)
	return out, nil
}

// valueText shows a leaf's value on one line: a PEM or other multi-line
// value as its size and digest, so diffs stay readable.
func valueText(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "\n") {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	n := strings.Count(v, "-----BEGIN CERTIFICATE-----")
	if n > 0 {
		return fmt.Sprintf("<PEM: %d certificate(s), sha256 %s>", n, hex.EncodeToString(sum[:6]))
	}
	return fmt.Sprintf("<%d lines, sha256 %s>", strings.Count(v, "\n")+1, hex.EncodeToString(sum[:6]))
}

func configShow(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("config show", flag.ContinueOnError)
	candidate := fs.Bool("candidate", false, "show the candidate instead of running")
	pos, err := e.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	prefix := ""
	if len(pos) == 1 {
		p, err := configPath(pos[0])
		if err != nil {
			return err
		}
		prefix = pathString(p)
	}
	ds := "running"
	if *candidate {
		ds = "candidate"
	}
	if e.output != "table" {
		// The tree as the agent holds it (module-qualified RFC 7951 JSON).
		if err := e.needPassword(); err != nil {
			return err
		}
		if *candidate {
			return usagef("config show --candidate: -o json|yaml show running (the candidate is read over NETCONF, as lines)")
		}
		path := "/authority"
		if prefix != "" {
			path = prefix
		}
		m, err := e.c.getConfig(ctx, path)
		if err != nil {
			return err
		}
		return e.emit(view{data: m})
	}
	lines, err := e.configLines(ctx, ds)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if prefix == "" || strings.HasPrefix(l, prefix) {
			fmt.Fprintln(e.stdout, l)
		}
	}
	return nil
}

// editCandidate sends one edit-config to the candidate, then commits it
// when commit is set.
func (e *env) editCandidate(ctx context.Context, config string, commit bool) error {
	if err := e.needPassword(); err != nil {
		return err
	}
	if _, err := e.c.rpc(ctx, "<edit-config><target><candidate/></target><config>"+config+"</config></edit-config>"); err != nil {
		return err
	}
	if !commit {
		fmt.Fprintln(e.stderr, "edited the candidate: 'pkictl config diff' shows it, 'pkictl config commit' applies it")
		return nil
	}
	return e.commit(ctx, 0)
}

func configSet(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("config set", flag.ContinueOnError)
	commit := fs.Bool("commit", false, "commit the candidate at once")
	pos, err := e.parse(fs, args, 1, 2)
	if err != nil {
		return err
	}
	p, err := configPath(pos[0])
	if err != nil {
		return err
	}
	last := p.Elem[len(p.Elem)-1]
	var value *string
	switch {
	case len(pos) == 2:
		v := pos[1]
		if f, ok := strings.CutPrefix(v, "@"); ok {
			b, err := os.ReadFile(f)
			if err != nil {
				return usagef("config set %s: %v", clip(v), err)
			}
			if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
				return usagef("%s holds a private key: not sent (configuration holds certificates only)", clip(f))
			}
			v = string(b)
		}
		value = &v
	case len(last.Key) == 0:
		return usagef("config set %s: give a VALUE (or a list entry's path, with its key, to create the entry)", clip(pos[0]))
	}
	if value == nil {
		empty := "" // the entry with its key and nothing else
		value = &empty
	}
	return e.editCandidate(ctx, editXML(p, value), *commit)
}

func configDelete(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("config delete", flag.ContinueOnError)
	commit := fs.Bool("commit", false, "commit the candidate at once")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	p, err := configPath(pos[0])
	if err != nil {
		return err
	}
	return e.editCandidate(ctx, editXML(p, nil), *commit)
}

// diff returns the lines only in running (-) and only in candidate (+).
func (e *env) diff(ctx context.Context) ([]string, error) {
	run, err := e.configLines(ctx, "running")
	if err != nil {
		return nil, err
	}
	cand, err := e.configLines(ctx, "candidate")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range run {
		if _, found := slices.BinarySearch(cand, l); !found {
			out = append(out, "- "+l)
		}
	}
	for _, l := range cand {
		if _, found := slices.BinarySearch(run, l); !found {
			out = append(out, "+ "+l)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return strings.Compare(a[2:], b[2:]) })
	return out, nil
}

func configDiff(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(flag.NewFlagSet("config diff", flag.ContinueOnError), args, 0, 0); err != nil {
		return err
	}
	d, err := e.diff(ctx)
	if err != nil {
		return err
	}
	return e.emit(view{data: map[string]any{"diff": d}, render: func(w io.Writer, _ int) {
		for _, l := range d {
			fmt.Fprintln(w, l)
		}
	}})
}

func configCommit(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("config commit", flag.ContinueOnError)
	confirmed := fs.Int("confirmed", 0, "roll back by itself unless 'pkictl config confirm' follows within this many seconds")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *confirmed < 0 || *confirmed > 86400 {
		return usagef("--confirmed %d: 1 to 86400 seconds", *confirmed)
	}
	return e.commit(ctx, *confirmed)
}

// commit shows the diff, then commits the candidate (confirmed when
// timeout > 0).
func (e *env) commit(ctx context.Context, timeout int) error {
	d, err := e.diff(ctx)
	if err != nil {
		return err
	}
	for _, l := range d {
		fmt.Fprintln(e.stdout, l)
	}
	op := "<commit/>"
	if timeout > 0 {
		op = fmt.Sprintf("<commit><confirmed/><confirm-timeout>%d</confirm-timeout><persist>%s</persist></commit>", timeout, e.persistID())
	}
	if _, err := e.c.rpc(ctx, op); err != nil {
		return err
	}
	switch {
	case timeout > 0:
		fmt.Fprintf(e.stderr, "committed; rolls back in %d s unless 'pkictl config confirm'\n", timeout)
	case len(d) == 0:
		fmt.Fprintln(e.stderr, "committed (no changes)")
	default:
		fmt.Fprintln(e.stderr, "committed")
	}
	return nil
}

func configConfirm(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(flag.NewFlagSet("config confirm", flag.ContinueOnError), args, 0, 0); err != nil {
		return err
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	if _, err := e.c.rpc(ctx, "<commit><persist-id>"+e.persistID()+"</persist-id></commit>"); err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, "confirmed")
	return nil
}

func configRollback(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("config rollback", flag.ContinueOnError), args, 0, 1)
	if err != nil {
		return err
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	if len(pos) == 1 {
		id, err := strconv.ParseUint(pos[0], 10, 64)
		if err != nil || id == 0 {
			return usagef("config rollback %q: N is a commit id (a whole number from 1, as show commits lists them)", clip(pos[0]))
		}
		out, err := e.c.rpc(ctx, fmt.Sprintf(`<rollback-configuration xmlns="%s"><id>%d</id></rollback-configuration>`, systemNS, id))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "rolled back to the configuration of commit %d%s\n", id, rollbackCommitID(out))
		return nil
	}
	if _, err := e.c.rpc(ctx, "<cancel-commit><persist-id>"+e.persistID()+"</persist-id></cancel-commit>"); err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, "rolled back the pending confirmed commit")
	return nil
}

func configDiscard(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(flag.NewFlagSet("config discard", flag.ContinueOnError), args, 0, 0); err != nil {
		return err
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	if _, err := e.c.rpc(ctx, "<discard-changes/>"); err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, "discarded the candidate's edits")
	return nil
}

// rollbackCommitID names the commit a rollback-configuration reply reports.
func rollbackCommitID(reply string) string {
	var out struct {
		ID string `xml:"id"`
	}
	if xml.Unmarshal([]byte("<r>"+reply+"</r>"), &out) != nil || out.ID == "" {
		return ""
	}
	return " (commit " + clip(out.ID) + ")"
}
