package tlsboot

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/pkiagent/pkiagent/telemetry"
)

// Managed keeps a Holder serving a certificate the agent manages
// (--tls-cert-name NAME): the one Load returns, or Fallback (the
// bootstrapped or operator-given certificate) while NAME has none.
// Established connections keep the certificate they were made with.
type Managed struct {
	Holder *Holder
	Name   string
	// Load returns NAME's chain and key handle; an error wrapping
	// api.ErrMissing means NAME has no certificate yet.
	Load     func(ctx context.Context, name string) (tls.Certificate, error)
	Fallback tls.Certificate
	Logger   *slog.Logger

	mu      sync.Mutex
	serving string // fingerprint of the managed certificate in force, "" for Fallback
	told    bool   // that NAME has no certificate yet was logged
}

// Reload puts NAME's current certificate in force. On an error other than
// a missing certificate the certificate in force is kept.
func (m *Managed) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	c, err := m.Load(ctx, m.Name)
	switch {
	case errors.Is(err, api.ErrMissing):
		if m.serving != "" || m.Holder.Current() == nil {
			m.Holder.Set(m.Fallback)
		}
		if m.serving != "" || !m.told {
			log.Warn("gNMI TLS: the managed certificate has no certificate yet; serving the bootstrapped or --tls-cert certificate until it is imported (generate-private-key, generate-csr, import-certificate, or a certz Rotate of profile gNxI)", "tls-cert-name", m.Name)
		}
		m.serving, m.told = "", true
		return nil
	case err != nil:
		log.Error("gNMI TLS: the managed certificate does not load; keeping the certificate in force", "tls-cert-name", m.Name, "err", err)
		return fmt.Errorf("--tls-cert-name %s: %w", m.Name, err)
	}
	fp := fmt.Sprintf("%x", sha256.Sum256(c.Certificate[0]))
	if fp == m.serving {
		return nil
	}
	m.Holder.Set(c)
	m.serving = fp
	log.Info("gNMI TLS: serving the managed certificate", "tls-cert-name", m.Name, "subject", m.Holder.Current().Leaf.Subject.String(), "fingerprint-sha256", fp, "not-after", m.Holder.Current().Leaf.NotAfter)
	return nil
}

// Watch reloads whenever a certificate-event of NAME is published on bus
// (import-certificate over NETCONF, a certz Rotate), until ctx ends.
func (m *Managed) Watch(ctx context.Context, bus *telemetry.Bus) error {
	for {
		sub := bus.Subscribe(64)
		m.Reload(ctx) // catch up on what happened before (re)subscribing
		if err := m.watch(ctx, sub); err != nil {
			return err
		}
	}
}

// watch returns nil when the subscription ended (it fell behind) and ctx
// is still live.
func (m *Managed) watch(ctx context.Context, sub *telemetry.Subscription) error {
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-sub.C:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return nil
			}
			if n := ev.Notification; n != nil && n.Name == "certificate-event" && leaf(n, "name") == m.Name && leaf(n, "event") == "ingest-certificate" {
				m.Reload(ctx)
			}
		}
	}
}

func leaf(n *api.Notification, name string) any {
	for _, l := range n.Leaves {
		if l.Name == name {
			return l.Value
		}
	}
	return nil
}
