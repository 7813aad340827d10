// Command pkictl is the operator's command line for pki-agent: it shows
// certificates, CRLs, alarms and counters (gNMI Get), edits and commits the
// configuration (NETCONF candidate), runs the PKI operations (NETCONF rpcs)
// and follows alarms live (gNMI Subscribe).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// Exit codes: 1 an operation failed, 2 the command line is wrong.
const (
	exitFail  = 1
	exitUsage = 2
)

// usageError is a wrong command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// Default addresses of an agent on this host (SPEC.md "Running it").
const (
	defaultGNMI    = "127.0.0.1:9339"
	defaultNETCONF = "127.0.0.1:830"
)

// connOptions say where the agent is and who we are.
type connOptions struct {
	gnmiAddr    string
	netconfAddr string
	tlsCA       string
	user        string
	password    string
	stateDir    string
	knownHosts  string
}

// env is what a command runs with: its streams, its environment and the
// global options.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	conn           connOptions
	output         string // table, json or yaml
	// width is the terminal width tables fit (0: no limit, e.g. piped).
	width int
	// progress: stderr is a terminal, so long operations say what they wait for.
	progress bool
	// passwordFlag is set when -p was given (it warns).
	passwordFlag bool
	c            *client
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is pkictl: it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	err := e.run(ctx, args)
	if e.c != nil {
		e.c.close()
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "pkictl:", ue.msg)
		fmt.Fprintln(stderr, "Run 'pkictl --help' for usage.")
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitFail
	}
	fmt.Fprintln(stderr, "pkictl:", oneLine(err.Error()))
	return exitFail
}

// oneLine keeps an error to one line on the terminal.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// globalFlags registers the connection and output flags on fs (every
// command takes them, before or after its own arguments).
func (e *env) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.conn.gnmiAddr, "a", e.conn.gnmiAddr, "gNMI address HOST:PORT (env PKICTL_ADDRESS; default "+defaultGNMI+")")
	fs.StringVar(&e.conn.netconfAddr, "netconf", e.conn.netconfAddr, "NETCONF address HOST:PORT (env PKICTL_NETCONF; default "+defaultNETCONF+")")
	fs.StringVar(&e.conn.tlsCA, "tls-ca", e.conn.tlsCA, "CA that signed the agent's gNMI certificate (env PKICTL_TLS_CA; default STATE-DIR/tls/ca.pem)")
	fs.StringVar(&e.conn.user, "u", e.conn.user, "user (env PKICTL_USERNAME; default admin)")
	fs.Func("p", "password (warns: prefer env PKICTL_PASSWORD)", func(s string) error {
		e.conn.password, e.passwordFlag = s, true
		return nil
	})
	fs.StringVar(&e.conn.stateDir, "state-dir", e.conn.stateDir, "the agent's state directory on this host: its CA, host key and admin password (env PKICTL_STATE_DIR)")
	fs.StringVar(&e.conn.knownHosts, "known-hosts", e.conn.knownHosts, "known_hosts file for the agent's SSH host key without --state-dir (default ~/.ssh/known_hosts)")
	fs.StringVar(&e.output, "o", e.output, "output: table, json or yaml")
}

// parse parses args with fs (which has the global flags too), flags and
// arguments in any order, and checks the argument count.
func (e *env) parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	e.globalFlags(fs)
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				e.printUsage(fs)
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	switch {
	case len(pos) < minArgs:
		return nil, usagef("%s: missing argument (usage: pkictl %s)", fs.Name(), commandUsage(fs.Name()))
	case maxArgs >= 0 && len(pos) > maxArgs:
		return nil, usagef("%s: unexpected argument %q (usage: pkictl %s)", fs.Name(), clip(pos[maxArgs]), commandUsage(fs.Name()))
	}
	return pos, e.finishOptions()
}

// finishOptions fills what the flags left unset from the environment and
// the state directory, and checks it.
func (e *env) finishOptions() error {
	fromEnv := func(v *string, name, def string) {
		if *v == "" {
			*v = e.getenv(name)
		}
		if *v == "" {
			*v = def
		}
	}
	fromEnv(&e.conn.stateDir, "PKICTL_STATE_DIR", "")
	fromEnv(&e.conn.gnmiAddr, "PKICTL_ADDRESS", defaultGNMI)
	fromEnv(&e.conn.netconfAddr, "PKICTL_NETCONF", defaultNETCONF)
	caDefault := ""
	if e.conn.stateDir != "" {
		caDefault = filepath.Join(e.conn.stateDir, "tls", "ca.pem")
	}
	fromEnv(&e.conn.tlsCA, "PKICTL_TLS_CA", caDefault)
	fromEnv(&e.conn.user, "PKICTL_USERNAME", "admin")
	fromEnv(&e.output, "PKICTL_OUTPUT", "table")
	if !slices.Contains([]string{"table", "json", "yaml"}, e.output) {
		return usagef("-o %q: want table, json or yaml", clip(e.output))
	}
	if e.passwordFlag {
		fmt.Fprintln(e.stderr, "pkictl: warning: a password on the command line is seen by other users of this host (ps, shell history); prefer env PKICTL_PASSWORD")
	}
	if e.conn.password == "" {
		e.conn.password = e.getenv("PKICTL_PASSWORD")
	}
	if e.conn.password == "" && e.conn.stateDir != "" && e.conn.user == "admin" {
		if b, err := os.ReadFile(filepath.Join(e.conn.stateDir, "admin-password")); err == nil {
			e.conn.password = strings.TrimSpace(string(b))
		}
	}
	if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil {
			e.width = w
		}
	} else if c := e.getenv("COLUMNS"); c != "" {
		fmt.Sscan(c, &e.width)
	}
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		e.progress = true
	}
	e.c = &client{conn: &e.conn}
	return nil
}

// needPassword is called by commands that talk to the agent.
func (e *env) needPassword() error {
	if e.conn.password == "" {
		return userErrorf("no password for user %s: set env PKICTL_PASSWORD (or give --state-dir of a local agent whose admin password was generated)", e.conn.user)
	}
	return nil
}

// command is one pkictl command: its words, its arguments and what it does.
type command struct {
	words   string
	args    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands are the pkictl commands. show trustpool, show ca-profile,
// show enrollment and enroll come with the agent's enrollment and trust
// pool, key delete with its delete-private-key rpc (SPEC.md "Enrollment,
// keys, trust"): add them to these lists then.
var commands []command

func init() {
	commands = slices.Concat(showCommands, actionCommands, configCommands, userCommands, watchCommands)
	sort.SliceStable(commands, func(i, j int) bool { return commands[i].words < commands[j].words })
}

func commandUsage(words string) string {
	for _, c := range commands {
		if c.words == words {
			return strings.TrimSpace(c.words + " " + c.args)
		}
	}
	return words
}

// find picks the command whose words start args, the longest first.
func find(args []string) (*command, []string) {
	var best *command
	n := 0
	for i := range commands {
		w := strings.Fields(commands[i].words)
		if len(w) > n && len(w) <= len(args) && slices.Equal(w, args[:len(w)]) {
			best, n = &commands[i], len(w)
		}
	}
	if best == nil {
		return nil, args
	}
	return best, args[n:]
}

func (e *env) run(ctx context.Context, args []string) error {
	// Global flags may come before the command.
	fs := flag.NewFlagSet("pkictl", flag.ContinueOnError)
	e.globalFlags(fs)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.printHelp()
			return err
		}
		return usagef("%v", err)
	}
	args = fs.Args()
	if len(args) == 0 {
		e.printHelp()
		return usagef("no command")
	}
	if args[0] == "help" {
		if len(args) > 1 {
			args = append(args[1:], "--help")
		} else {
			e.printHelp()
			return nil
		}
	}
	cmd, rest := find(args)
	if cmd == nil {
		return usagef("unknown command %q", clip(strings.Join(args, " ")))
	}
	return cmd.run(ctx, e, rest)
}

func (e *env) printHelp() {
	w := e.stdout
	fmt.Fprint(w, `Usage: pkictl [flags] COMMAND [arguments]

pkictl is the command line of pki-agent: reads over gNMI, configuration and
PKI operations over NETCONF, alarms live over gNMI Subscribe.

Commands:
`)
	width := 0
	for _, c := range commands {
		width = max(width, len(c.words+" "+c.args))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, strings.TrimSpace(c.words+" "+c.args), c.summary)
	}
	fmt.Fprint(w, `
Flags (before or after the command):
`)
	fs := flag.NewFlagSet("pkictl", flag.ContinueOnError)
	e.globalFlags(fs)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Environment: PKICTL_ADDRESS, PKICTL_NETCONF, PKICTL_TLS_CA, PKICTL_USERNAME,
PKICTL_PASSWORD, PKICTL_STATE_DIR, PKICTL_OUTPUT; COLUMNS (table width when
not on a terminal).
Exit status: 0 done, 1 the operation failed, 2 the command line is wrong.
Run 'pkictl COMMAND --help' for a command's flags.
`)
}

func (e *env) printUsage(fs *flag.FlagSet) {
	for _, c := range commands {
		if c.words == fs.Name() {
			fmt.Fprintf(e.stdout, "Usage: pkictl %s\n\n%s.\n", strings.TrimSpace(c.words+" "+c.args), c.summary)
		}
	}
	own := false
	fs.VisitAll(func(f *flag.Flag) {
		if !isGlobal(f.Name) {
			own = true
		}
	})
	if own {
		fmt.Fprintln(e.stdout, "\nFlags:")
		fs.VisitAll(func(f *flag.Flag) {
			if !isGlobal(f.Name) {
				fmt.Fprintf(e.stdout, "  --%s\t%s\n", f.Name, f.Usage)
			}
		})
	}
	fmt.Fprintln(e.stdout, "\nConnection and output flags as in 'pkictl --help'.")
}

func isGlobal(name string) bool {
	return slices.Contains([]string{"a", "netconf", "tls-ca", "u", "p", "state-dir", "known-hosts", "o"}, name)
}
