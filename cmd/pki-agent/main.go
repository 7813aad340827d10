// Command pki-agent is the router PKI configuration agent: it holds the
// pki-authority configuration in a transactional datastore, applies it to
// the PKI engine, and serves it over gNMI and NETCONF. This package only
// parses flags, builds the parts in order in run (datastore, audit log, PKI
// engine, users, gNMI with gNSI certz, NETCONF, metrics), runs them and
// turns signals into shutdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/northbound/auth"
	"github.com/pkiagent/pkiagent/northbound/certz"
	"github.com/pkiagent/pkiagent/northbound/gnmi"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ops"
	"github.com/pkiagent/pkiagent/pki"
	"github.com/pkiagent/pkiagent/pki/keystore"
	"github.com/pkiagent/pkiagent/telemetry"
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

// run is the whole start-up, in order, and the shutdown. What is built
// first is closed last.
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
	clk := clock.Real{}
	node, _ := os.Hostname()
	ctx := context.Background()

	// The telemetry hub: commits, state and alarms fan out from it to gNMI
	// Subscribe, NETCONF notifications and the audit log. Closed after the
	// store and the engine, which publish on it.
	hub := telemetry.NewBus()
	defer hub.Close()

	// The datastore: running and the commit history, from STATE-DIR.
	store, dir, err := agent.OpenStore(opts.stateDir, agent.Config{Clock: clk, Logger: log, Bus: hub})
	if err != nil {
		return err
	}
	defer dir.Close()

	// The audit log, closed last: everything below writes to it. Refusals
	// (logins, operations denied to the caller's role) go through one
	// coalescer, so that a flood of them writes a few lines.
	auditLog, err := audit.Open(filepath.Join(opts.stateDir, "audit.log"), node)
	if err != nil {
		return err
	}
	refusals := audit.NewCoalescer(auditLog, clk, log, 0, 0)
	defer func() {
		refusals.Flush()
		auditLog.Close()
	}()
	// The store hands every transition of the confirmed-commit machine to
	// the auditor, in order, without the bus's risk of loss.
	store.AddAuditor(confirmAuditor{log: auditLog, errs: log})

	// The PKI engine over its keystores. It validates and applies every
	// commit, publishes state and alarms, and serves the PKI rpcs.
	keys, closeTPM, err := openKeyStores(opts, log)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer closeTPM()
	engine, err := pki.New(ctx, pki.Config{
		StateDir: opts.stateDir, Node: node, Clock: clk, Logger: log,
		Bus: hub, Audit: auditLog, Keys: keys, ServerCertName: opts.tlsCertName,
	})
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	// Closed before the TPM and the audit log: Close waits for an
	// in-flight commit, which uses both.
	defer store.Close()
	// In step with the running configuration loaded from disk, and clear
	// of rotations a crash interrupted, before any server accepts a
	// request.
	if err := engine.Load(ctx, store.Sealed()); err != nil { // with the secrets it needs
		return fmt.Errorf("pki: %w", err)
	}
	if err := engine.RecoverRotations(ctx); err != nil {
		return fmt.Errorf("certz: undo rotations a restart interrupted: %w", err)
	}
	store.AddValidator(engine)
	store.AddApplier(engine)
	store.AddStateSource(engine)
	// Subscribed now, so no commit made once the servers run is missed.
	commits := newCommitAuditor(hub, auditLog, log)

	// Users and roles, shared by gNMI and NETCONF: configuration
	// (/system/aaa/user), in every commit from now on.
	users, err := openUsers(store, auth.Config{
		File: opts.usersFile, StateDir: opts.stateDir,
		AdminPassword: os.Getenv(auth.AdminPasswordEnv), Logger: log,
		Clock: clk, Audit: refusals,
	})
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}

	// gNMI, with gNSI certz on its port.
	creds, err := gnmiCredentials(opts, clk, log, engine)
	if err != nil {
		return fmt.Errorf("gnmi: %w", err)
	}
	gnmiSrv, err := gnmi.New(gnmi.Config{Store: store, Bus: hub, Auth: users, Audit: refusals, Clock: clk, Logger: log})
	if err != nil {
		return err
	}
	certzSrv, err := certz.New(certzConfig(opts, engine, store, log, creds.managed))
	if err != nil {
		return err
	}
	gnmiLis, err := listen("--gnmi-addr", opts.gnmiAddr)
	if err != nil {
		return err
	}
	defer gnmiLis.Close()

	// NETCONF over SSH, its operations over the datastore and the engine.
	ncOps, err := ops.New(ops.Config{Store: store, Bus: hub, PKI: engine, Clock: clk, Logger: log})
	if err != nil {
		return err
	}
	ncSrv, err := netconf.NewServer(netconfConfig(opts, ncOps, users, refusals, clk, log))
	if err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	ncLis, err := listen("--netconf-addr", opts.netconfAddr)
	if err != nil {
		return err
	}
	defer ncLis.Close()

	// Prometheus /metrics, when asked for.
	var metricsSrv *http.Server
	var metricsLis net.Listener
	if opts.metricsAddr != "" {
		if metricsLis, err = listen("--metrics-addr", opts.metricsAddr); err != nil {
			return err
		}
		defer metricsLis.Close()
		metricsSrv = metricsServer(store, log)
	}

	// Syslog of alarms, audit records and expiry alerts, when asked for.
	syslogSender, err := openSyslog(opts, store, hub, auditLog, clk, log)
	if err != nil {
		return err
	}

	// Everything runs until a signal or the failure of one component.
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	components := newGroup()
	components.Go("pki", engine.Run)
	components.Go("audit", commits.run)
	components.Go("audit-refusals", func(ctx context.Context) error { refusals.Run(ctx); return nil })
	if creds.managed != nil {
		components.Go("tls-cert-name", func(ctx context.Context) error { return creds.managed.Watch(ctx, hub) })
	}
	components.Go("gnmi", func(ctx context.Context) error {
		return gnmiSrv.Serve(ctx, gnmiLis, creds.config, certzSrv.Register)
	})
	components.Go("netconf-notifications", ncOps.Run)
	components.Go("netconf", func(ctx context.Context) error { return ncSrv.Serve(ctx, ncLis) })
	if syslogSender != nil {
		components.Go("syslog", syslogSender.Run)
	}
	if metricsSrv != nil {
		components.Go("metrics", func(ctx context.Context) error { return serveMetrics(ctx, metricsSrv, metricsLis, log) })
	}
	h := store.History()
	log.Info("pki-agent started", "state-dir", opts.stateDir, "commit", h[len(h)-1].ID, "components", components.names)

	var cause error
	select {
	case <-sigCtx.Done():
		cause = context.Cause(sigCtx)
	case <-components.ctx.Done():
		cause = context.Cause(components.ctx)
	}
	log.Info("shutting down", "reason", cause)
	// Before the components stop, so the PKI engine still applies the
	// rollback and the audit log records it.
	rollbackPending(store, log)
	components.stop()
	if cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	log.Info("pki-agent stopped")
	return nil
}

// listen listens on addr, the value of the flag named name.
func listen(name, addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", name, addr, err)
	}
	return lis, nil
}

// group runs the long-running components of the agent until ctx is
// cancelled: by stop, or by the first component that fails.
type group struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	names  []string
}

func newGroup() *group {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &group{ctx: ctx, cancel: cancel}
}

// Go runs component; an error other than cancellation stops them all.
func (g *group) Go(name string, component func(context.Context) error) {
	g.names = append(g.names, name)
	g.wg.Go(func() {
		if err := component(g.ctx); err != nil && !errors.Is(err, context.Canceled) {
			g.cancel(fmt.Errorf("%s: %w", name, err))
		}
	})
}

// stop cancels the components and waits for them to return.
func (g *group) stop() {
	g.cancel(nil)
	g.wg.Wait()
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
