package main

import (
	"context"
	"time"

	"github.com/pkiagent/pkiagent/northbound/auth"
)

// setupUsers makes the users of the configuration take part in every
// commit (hash the passwords set, keep an admin, in force for new logins at
// once), then makes sure there are users: those of running, else the
// users file migrated, else a first admin.
func setupUsers(a *app, cfg auth.Config) (*auth.Users, error) {
	u, err := auth.New(cfg)
	if err != nil {
		return nil, err
	}
	a.store.SetSealer(u)
	a.store.AddValidator(u)
	a.store.AddApplier(u)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := u.Bootstrap(ctx, a.store); err != nil {
		return nil, err
	}
	return u, nil
}
