package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/northbound/metrics"
)

// metricsServer serves Prometheus /metrics from the store's state.
func metricsServer(store *agent.Store, log *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(store, log))
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
}

// serveMetrics serves srv on lis until ctx ends, then shuts it down.
func serveMetrics(ctx context.Context, srv *http.Server, lis net.Listener, log *slog.Logger) error {
	log.Info("metrics listening", "addr", lis.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	<-served // http.ErrServerClosed, as soon as Shutdown starts
	return nil
}
