package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"path/filepath"

	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/northbound/tlsboot"
	"github.com/pkiagent/pkiagent/pki"
)

// gnmiCreds is the TLS of the gNMI port: config is nil with
// --gnmi-insecure, managed nil without --tls-cert-name.
type gnmiCreds struct {
	config  *tls.Config
	managed *tlsboot.Managed
}

// gnmiCredentials loads the server certificate of the gNMI port: the one
// of --tls-cert, or one bootstrapped in STATE-DIR/tls; with
// --tls-cert-name, the engine's certificate of that name replaces it once
// imported, and every import or rotation of the name after that.
func gnmiCredentials(opts *options, clk clock.Clock, log *slog.Logger, engine *pki.Engine) (gnmiCreds, error) {
	if opts.gnmiInsecure {
		log.Warn("gNMI serves plaintext (--gnmi-insecure): passwords cross the network in the clear; use it in labs only", "addr", opts.gnmiAddr)
		if opts.tlsCertName != "" {
			log.Warn("--tls-cert-name is ignored with --gnmi-insecure", "name", opts.tlsCertName)
		}
		return gnmiCreds{}, nil
	}
	var cert tls.Certificate
	var err error
	if opts.tlsCert != "" {
		cert, err = tlsboot.LoadKeyPair(opts.tlsCert, opts.tlsKey)
	} else {
		cert, err = tlsboot.Bootstrap{Dir: filepath.Join(opts.stateDir, "tls"), Clock: clk, Logger: log}.Ensure()
	}
	if err != nil {
		return gnmiCreds{}, err
	}
	holder := tlsboot.NewHolder(cert)
	var clientCAs *x509.CertPool
	if opts.clientCA != "" {
		if clientCAs, err = tlsboot.LoadClientCAs(opts.clientCA); err != nil {
			return gnmiCreds{}, err
		}
	}
	creds := gnmiCreds{config: tlsboot.ServerConfig(holder, clientCAs)}
	if opts.tlsCertName != "" {
		creds.managed = &tlsboot.Managed{Holder: holder, Name: opts.tlsCertName, Load: engine.TLSCertificate, Fallback: cert, Logger: log}
		// In force before the first handshake.
		creds.managed.Reload(context.Background())
	}
	return creds, nil
}
