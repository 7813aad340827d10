package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/pkiagent/pkiagent/northbound/metrics"
)

// Prometheus /metrics on --metrics-addr, when given.
func init() {
	components = append(components, component{name: "metrics", setup: setupMetrics})
}

func setupMetrics(a *app) (func(context.Context) error, error) {
	if a.opts.metricsAddr == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", a.opts.metricsAddr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", a.opts.metricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(a.store, a.log))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	a.log.Info("metrics listening", "addr", lis.Addr().String())
	return func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(shut)
		}()
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics server: %w", err)
		}
		return nil
	}, nil
}
