package main

import (
	"context"
	"time"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/northbound/auth"
)

// openUsers makes the users of the configuration (/system/aaa/user) take
// part in every commit of store (hash the passwords set, keep an admin, in
// force for new logins at once), then makes sure there are users: those of
// running, else the users file migrated, else a first admin.
func openUsers(store *agent.Store, cfg auth.Config) (*auth.Users, error) {
	u, err := auth.New(cfg)
	if err != nil {
		return nil, err
	}
	store.SetSealer(u)
	store.AddValidator(u)
	store.AddApplier(u)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := u.Bootstrap(ctx, store); err != nil {
		return nil, err
	}
	return u, nil
}
