package main

import (
	"context"
	"flag"
	"io"
	"slices"
	"strconv"
	"strings"
)

// --- show ca-profile, show enrollment: like SR OS "show certificate
// ca-profile" and "admin certificate cmpv2 show-request".

type caProfile struct {
	Name      string `json:"name"`
	Protocol  string `json:"protocol"`
	URL       string `json:"url"`
	TrustedCA string `json:"trusted-ca"`
	Timeout   int    `json:"timeout"`
	Proxy     string `json:"http-proxy"`
	CMPv2     struct {
		Reference string `json:"reference"`
		Recipient string `json:"recipient"`
	} `json:"cmpv2"`
	State struct {
		Status      string `json:"status"`
		LastContact string `json:"last-contact"`
		LastError   string `json:"last-error"`
	} `json:"state"`
}

func showCAProfile(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("show ca-profile", flag.ContinueOnError), args, 0, 1)
	if err != nil {
		return err
	}
	var profiles []caProfile
	if err := e.getInto(ctx, "/authority", "ca-profile", &profiles); err != nil {
		return err
	}
	if len(pos) == 1 {
		profiles = slices.DeleteFunc(profiles, func(p caProfile) bool { return p.Name != pos[0] })
		if len(profiles) == 0 {
			return userErrorf("no ca-profile %q is configured", clip(pos[0]))
		}
	}
	slices.SortFunc(profiles, func(a, b caProfile) int { return strings.Compare(a.Name, b.Name) })
	return e.emit(view{data: map[string]any{"ca-profile": profiles}, render: func(w io.Writer, width int) { caProfileTable(profiles).render(w, width) }})
}

func caProfileTable(profiles []caProfile) *table {
	t := &table{headers: []string{"NAME", "PROTOCOL", "URL", "TRUSTED CA", "REFERENCE", "STATUS", "LAST CONTACT", "LAST ERROR"}}
	for _, p := range profiles {
		t.add(p.Name, orDash(p.Protocol), orDash(p.URL), orDash(p.TrustedCA), orDash(p.CMPv2.Reference),
			orDash(p.State.Status), orDash(p.State.LastContact), orDash(p.State.LastError))
	}
	return t
}

type enrollment struct {
	Name       string `json:"name"`
	Enrollment struct {
		CAProfile string `json:"ca-profile"`
		Subject   string `json:"subject"`
		AutoRenew int    `json:"auto-renew"`
		Storage   string `json:"key-storage"`
	} `json:"enrollment"`
	State struct {
		Status        string `json:"enrollment-status"`
		LastAttempt   string `json:"last-attempt"`
		LastSuccess   string `json:"last-success"`
		LastError     string `json:"last-error"`
		NextRenewal   string `json:"next-renewal"`
		TransactionID string `json:"transaction-id"`
	} `json:"state"`
}

func showEnrollment(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("show enrollment", flag.ContinueOnError), args, 0, 1)
	if err != nil {
		return err
	}
	var certs []enrollment
	if err := e.getInto(ctx, "/authority", "client-certificate", &certs); err != nil {
		return err
	}
	certs = slices.DeleteFunc(certs, func(c enrollment) bool {
		return c.Enrollment.CAProfile == "" || len(pos) == 1 && c.Name != pos[0]
	})
	if len(pos) == 1 && len(certs) == 0 {
		return userErrorf("client-certificate %q has no enrollment configured", clip(pos[0]))
	}
	slices.SortFunc(certs, func(a, b enrollment) int { return strings.Compare(a.Name, b.Name) })
	return e.emit(view{data: map[string]any{"client-certificate": certs}, render: func(w io.Writer, width int) { enrollmentTable(certs).render(w, width) }})
}

func enrollmentTable(certs []enrollment) *table {
	t := &table{headers: []string{"CERTIFICATE", "CA PROFILE", "SUBJECT", "AUTO-RENEW", "STATUS", "LAST SUCCESS", "NEXT RENEWAL", "LAST ERROR", "TRANSACTION"}}
	for _, c := range certs {
		renew := "-"
		if c.Enrollment.AutoRenew > 0 {
			renew = strconv.Itoa(c.Enrollment.AutoRenew) + "%"
		}
		t.add(c.Name, c.Enrollment.CAProfile, orDash(c.Enrollment.Subject), renew, orDash(c.State.Status),
			orDash(c.State.LastSuccess), orDash(c.State.NextRenewal), orDash(c.State.LastError), orDash(c.State.TransactionID))
	}
	return t
}
