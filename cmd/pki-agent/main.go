// Command pki-agent is the router PKI configuration agent: it holds the
// pki-authority configuration in a transactional datastore, applies it to
// the PKI engine, and serves it over gNMI and NETCONF. This package only
// parses flags, wires the parts together and turns signals into shutdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/northbound/auth"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/pki/keystore"
)

// options are the command-line flags of SPEC.md.
type options struct {
	stateDir     string
	gnmiAddr     string
	netconfAddr  string
	tlsCert      string
	tlsKey       string
	tlsCertName  string
	clientCA     string
	gnmiInsecure bool
	tpm          string
	usersFile    string
	metricsAddr  string
	syslog       string
	syslogCA     string
	logLevel     string
	// netconfIdleTimeout ends silent NETCONF sessions (0: never);
	// netconfMaxPerUser bounds the sessions of one user.
	netconfIdleTimeout time.Duration
	netconfMaxPerUser  int
}

// version is set by the Makefile (-ldflags "-X main.version=...");
// without it the module version or VCS revision of the build is shown.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 && (v == "" || v == "(devel)") {
			v = s.Value[:12]
		}
	}
	return v
}

// errVersion asks main to print the version and exit 0, as flag.ErrHelp
// asks for the usage.
var errVersion = errors.New("version requested")

// environment lists the variables the agent reads, for --help.
const environment = `
Environment:
  ` + auth.AdminPasswordEnv + `  password of user admin on the first start with no users
                            (without it one is generated into STATE-DIR/admin-password)
`

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("pki-agent", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: pki-agent [flags]\n\nThe router PKI configuration agent: gNMI and NETCONF on loopback unless an address is given.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(w, environment)
	}
	fs.StringVar(&o.stateDir, "state-dir", "./var", "directory for datastores, keys, certificates, CRLs and the audit log")
	fs.StringVar(&o.gnmiAddr, "gnmi-addr", "127.0.0.1:9339", "gNMI (and gNSI certz) listen address, TLS (loopback unless told otherwise)")
	fs.StringVar(&o.netconfAddr, "netconf-addr", "127.0.0.1:830", "NETCONF over SSH listen address (loopback unless told otherwise)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "gNMI server certificate (PEM); bootstrapped in STATE-DIR/tls when absent")
	fs.StringVar(&o.tlsKey, "tls-key", "", "gNMI server private key (PEM)")
	fs.StringVar(&o.tlsCertName, "tls-cert-name", "", "serve gNMI with this agent-managed certificate, hot-reloaded on re-import")
	fs.StringVar(&o.clientCA, "client-ca", "", "require client certificates signed by this CA bundle (mTLS)")
	fs.BoolVar(&o.gnmiInsecure, "gnmi-insecure", false, "serve gNMI without TLS (labs only)")
	fs.StringVar(&o.tpm, "tpm", "none", "TPM: none, sim, /dev/tpmrm0 or tcp://HOST:PORT (swtpm)")
	fs.StringVar(&o.usersFile, "users-file", "", "users file to migrate into the configuration (/system/aaa/user) at the first start, then renamed FILE.migrated (default STATE-DIR/users.json)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "Prometheus /metrics listen address (off when empty)")
	fs.StringVar(&o.syslog, "syslog", "", "send alarms, audit events and expiry alerts as RFC 5424 syslog to udp://HOST:PORT, tcp://HOST:PORT (octet counting) or tls://HOST:PORT (off when empty)")
	fs.StringVar(&o.syslogCA, "syslog-ca", "", "CA bundle (PEM) that verifies a tls:// syslog receiver (default: the system roots)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&o.netconfIdleTimeout, "netconf-idle-timeout", netconf.DefaultIdleTimeout,
		"end a NETCONF session that sends no rpc for this long, e.g. 10m or 1h (0: never); a session with a notification subscription is not idle")
	fs.IntVar(&o.netconfMaxPerUser, "netconf-max-sessions-per-user", netconf.DefaultMaxSessionsPerUser,
		"NETCONF sessions one user may have open at once")
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(os.Stdout) // asked for: not an error
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *showVersion {
		return nil, errVersion
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.netconfIdleTimeout < 0 {
		return nil, fmt.Errorf("--netconf-idle-timeout %s: must be 0 (never) or positive", o.netconfIdleTimeout)
	}
	if o.netconfMaxPerUser < 1 {
		return nil, fmt.Errorf("--netconf-max-sessions-per-user %d: must be at least 1", o.netconfMaxPerUser)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if o.tlsCertName != "" {
		if err := keystore.ValidateName(o.tlsCertName); err != nil {
			return nil, fmt.Errorf("--tls-cert-name: %w (it names a certificate of generate-private-key)", err)
		}
	}
	if err := checkSyslogFlags(o); err != nil {
		return nil, err
	}
	if o.usersFile == "" {
		o.usersFile = o.stateDir + "/users.json"
	}
	return o, nil
}

// app is what the wiring functions share.
type app struct {
	opts  *options
	log   *slog.Logger
	clock clock.Clock
	store *agent.Store
	dir   *persist.Dir
	// pki serves the PKI rpcs once the pki component is set up.
	pki api.PKI
	// audit is the audit log and refusals its coalescer of refusals
	// (openAudit).
	audit    *audit.Log
	refusals *audit.Coalescer
	// atExit runs, last added first, once every component has stopped.
	atExit []func()
}

// exit runs a.atExit.
func (a *app) exit() {
	for _, f := range slices.Backward(a.atExit) {
		f()
	}
	a.atExit = nil
}

// component is a long-running part of the agent started after the store is
// loaded; run blocks until ctx is cancelled and returns after cleanup.
type component struct {
	name string
	// engine marks a component the others depend on (the PKI engine): it
	// is set up before every component that is not one, so a.pki is set
	// when the northbound servers are set up.
	engine bool
	// setup runs before any component runs; it may register validators,
	// appliers and state sources on the store.
	setup func(a *app) (run func(ctx context.Context) error, err error)
}

// components are registered by the wiring files of this package.
var components []component

func registered(name string) bool {
	for _, c := range components {
		if c.name == name {
			return true
		}
	}
	return false
}

func main() {
	err := run(os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		// The usage is printed already.
	case errors.Is(err, errVersion):
		fmt.Println("pki-agent", versionString())
	case err != nil:
		fmt.Fprintln(os.Stderr, "pki-agent:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", opts.logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	store, dir, err := agent.OpenStore(opts.stateDir, agent.Config{Clock: clock.Real{}, Logger: log})
	if err != nil {
		return err
	}
	defer dir.Close()
	a := &app{opts: opts, log: log, clock: clock.Real{}, store: store, dir: dir}

	sigCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var runs []func(context.Context) error
	var names []string
	ordered := slices.Clone(components)
	slices.SortStableFunc(ordered, func(x, y component) int {
		switch {
		case x.engine == y.engine:
			return 0
		case x.engine:
			return -1
		}
		return 1
	})
	for _, c := range ordered {
		r, err := c.setup(a)
		if err != nil {
			store.Close()
			a.exit()
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if r != nil {
			runs = append(runs, r)
			names = append(names, c.name)
		}
	}
	for _, want := range []struct{ component, flag, addr string }{{"gnmi", "--gnmi-addr", opts.gnmiAddr}, {"netconf", "--netconf-addr", opts.netconfAddr}} {
		if !registered(want.component) {
			log.Warn(want.component+" is not available in this build yet; nothing listens on "+want.flag, "addr", want.addr)
		}
	}
	h := store.History()
	log.Info("pki-agent started", "state-dir", opts.stateDir, "commit", h[len(h)-1].ID, "components", names)

	// The components run until a signal or the failure of one of them; they
	// are stopped only after a pending confirmed commit is rolled back, so
	// the PKI engine still applies the rollback.
	ctx, cancel := context.WithCancelCause(context.Background())
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r(ctx); err != nil && !errors.Is(err, context.Canceled) {
				cancel(fmt.Errorf("%s: %w", names[i], err))
			}
		}()
	}
	var cause error
	select {
	case <-sigCtx.Done():
		cause = context.Cause(sigCtx)
	case <-ctx.Done():
		cause = context.Cause(ctx)
	}
	log.Info("shutting down", "reason", cause)
	rollbackPending(store, log)
	cancel(nil)
	wg.Wait()
	store.Close() // waits for an in-flight commit
	a.exit()
	if cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	log.Info("pki-agent stopped")
	return nil
}

// rollbackPending rolls back a confirmed commit still waiting for its
// confirmation when the agent stops: RFC 6241 8.4.1 wants the configuration
// from before it after a restart, and running is persisted, so a restart
// would otherwise keep the unconfirmed change for good.
func rollbackPending(store *agent.Store, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, ok, err := store.RollBackPending(ctx)
	if err != nil {
		log.Error("rolling back the unconfirmed commit at shutdown failed; it stays in running until the next start rolls it back", "id", p.ID, "err", err)
		return
	}
	if ok {
		log.Warn("rolled back a confirmed commit that was not confirmed before shutdown", "id", p.ID, "owner", p.Owner)
	}
}
