package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkiagent/pkiagent/northbound/syslog"
)

// Syslog on --syslog, when given: the alarms of the bus, every audit
// record (a tee of the audit log) and the certificates' expiry alerts, as
// RFC 5424 messages; its counters in /system/syslog/state.
func init() {
	components = append(components, component{name: "syslog", setup: setupSyslog})
}

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

func setupSyslog(a *app) (func(context.Context) error, error) {
	if a.opts.syslog == "" {
		return nil, nil
	}
	var tlsCfg *tls.Config
	if a.opts.syslogCA != "" {
		pemBytes, err := os.ReadFile(a.opts.syslogCA)
		if err != nil {
			return nil, fmt.Errorf("--syslog-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("--syslog-ca %s: no PEM certificate in it", a.opts.syslogCA)
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	s, err := syslog.New(syslog.Config{
		Addr: a.opts.syslog, TLS: tlsCfg, Source: a.store,
		MarksFile: filepath.Join(a.opts.stateDir, "syslog-expiry-alerts.json"),
		Clock:     a.clock, Logger: a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("--syslog: %w", err)
	}
	al, _, err := a.openAudit()
	if err != nil {
		return nil, err
	}
	al.Tee(s.Audit)
	a.store.AddStateSource(s)
	a.log.Info("syslog to "+strings.SplitN(a.opts.syslog, "://", 2)[0], "server", a.opts.syslog)
	return s.Run, nil
}
