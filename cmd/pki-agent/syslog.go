package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/northbound/syslog"
	"github.com/pkiagent/pkiagent/telemetry"
)

func checkSyslogFlags(o *options) error {
	if o.syslog == "" {
		if o.syslogCA != "" {
			return errors.New("--syslog-ca goes with --syslog tls://HOST:PORT")
		}
		return nil
	}
	network, _, err := syslog.ParseAddr(o.syslog)
	if err != nil {
		return fmt.Errorf("--syslog: %w", err)
	}
	if o.syslogCA != "" && network != "tls" {
		return errors.New("--syslog-ca goes with --syslog tls://HOST:PORT")
	}
	return nil
}

// openSyslog makes the syslog sender of --syslog (nil without it): the
// alarms of the store's bus, every record of the audit log (a tee) and the
// certificates' expiry alerts, as RFC 5424 messages; its counters in
// /system/syslog/state.
func openSyslog(opts *options, store *agent.Store, hub *telemetry.Bus, auditLog *audit.Log, clk clock.Clock, log *slog.Logger) (*syslog.Sender, error) {
	if opts.syslog == "" {
		return nil, nil
	}
	var tlsCfg *tls.Config
	if opts.syslogCA != "" {
		pemBytes, err := os.ReadFile(opts.syslogCA)
		if err != nil {
			return nil, fmt.Errorf("--syslog-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("--syslog-ca %s: no PEM certificate in it", opts.syslogCA)
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	s, err := syslog.New(syslog.Config{
		Addr: opts.syslog, TLS: tlsCfg, Bus: hub, State: store,
		MarksFile: filepath.Join(opts.stateDir, "syslog-expiry-alerts.json"),
		Clock:     clk, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("--syslog: %w", err)
	}
	auditLog.Tee(s.Audit)
	store.AddStateSource(s)
	log.Info("sending syslog", "server", opts.syslog)
	return s, nil
}
