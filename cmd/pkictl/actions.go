package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"
)

// pkiNS is the namespace of the agent's rpcs.
const (
	pkiNS    = "urn:pkiagent:yang:pki-authority"
	systemNS = "urn:pkiagent:yang:pki-agent-system"
)

var actionCommands = []command{
	{words: "key generate", args: "NAME [--algorithm rsa|ecc|ed25519] [--size BITS] [--curve secp256r1|secp384r1|secp521r1] [--storage file|tpm]", summary: "generate a private key on the agent (it never leaves the box)", run: keyGenerate},
	{words: "key delete", args: "NAME [--force]", summary: "destroy private key NAME (refused while a certificate or an enrollment uses it, unless --force)", run: keyDelete},
	{words: "enroll", args: "NAME [--force]", summary: "enroll or renew client certificate NAME now with its CA profile (CMPv2)", run: enrollCommand},
	{words: "csr", args: "NAME --cn COMMON-NAME [--san dns:NAME,ip:ADDR,uri:URI] [--org O] [--ou OU] [--country CC] [--state ST] [--locality L] [--email ADDR] [--days N]", summary: "have the agent sign a CSR with key NAME; the PEM goes to stdout", run: csrCommand},
	{words: "import", args: "NAME CERT.pem", summary: "import the CA-signed certificate of key NAME (- reads stdin)", run: importCommand},
	{words: "crl refresh", args: "[URL]", summary: "fetch one CRL (or all) now", run: crlRefresh},
	{words: "peer validate", args: "ROUTER PEER CHAIN.pem", summary: "validate a peer's certificate chain as ROUTER would (exit 1 unless valid)", run: peerValidate},
}

// checkName refuses, before asking the agent, a name the agent's one
// object-name rule (api.CheckName) refuses.
func checkName(what, s string) error {
	if err := api.CheckName(what, s, api.MaxNameLen); err != nil {
		return usagef("%s %q: 1 to 64 letters, digits, dots, underscores or hyphens, not . or ..", what, clip(s))
	}
	return nil
}

// leaves returns the text of every leaf of an XML reply by local name (a
// leaf given more than once keeps all its values in order).
func leaves(body string) map[string][]string {
	out := map[string][]string{}
	d := xml.NewDecoder(strings.NewReader(body))
	var stack []string
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, t.Name.Local)
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			if len(stack) > 0 {
				out[stack[len(stack)-1]] = append(out[stack[len(stack)-1]], strings.TrimSpace(text.String()))
				stack = stack[:len(stack)-1]
			}
			text.Reset()
		}
	}
}

// progress says on a terminal's stderr what a long operation waits for,
// with the seconds it has taken; it prints nothing when stderr is piped.
// The returned function clears the line.
func (e *env) startProgress(msg string) func() {
	if !e.progress {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		frames := `|/-\`
		for i := 0; ; i++ {
			select {
			case <-done:
				fmt.Fprint(e.stderr, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(e.stderr, "\r%c %s (%ds)", frames[i%4], msg, int(time.Since(start).Seconds()))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func keyGenerate(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("key generate", flag.ContinueOnError)
	alg := fs.String("algorithm", "ecc", "rsa, ecc or ed25519 (a TPM holds no ed25519 keys)")
	size := fs.Int("size", 0, "RSA key size: 2048..4096, a multiple of 256 (default 2048)")
	curve := fs.String("curve", "", "ECC curve: secp256r1 (default), secp384r1 or secp521r1")
	storage := fs.String("storage", "file", "file or tpm")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkName("key name", pos[0]); err != nil {
		return err
	}
	var in strings.Builder
	fmt.Fprintf(&in, "<name>%s</name>", pos[0])
	what := ""
	switch *alg {
	case "rsa":
		if *curve != "" {
			return usagef("--curve is for --algorithm ecc")
		}
		if *size == 0 {
			*size = 2048
		}
		if *size < 2048 || *size > 4096 || *size%256 != 0 {
			return usagef("--size %d: RSA keys are 2048 to 4096 bits, a multiple of 256", *size)
		}
		fmt.Fprintf(&in, "<algorithm>rsa</algorithm><rsa-key-size>%d</rsa-key-size>", *size)
		what = fmt.Sprintf("RSA %d", *size)
	case "ecc":
		if *size != 0 {
			return usagef("--size is for --algorithm rsa (ECC keys take --curve)")
		}
		if *curve == "" {
			*curve = "secp256r1"
		}
		if *curve != "secp256r1" && *curve != "secp384r1" && *curve != "secp521r1" {
			return usagef("--curve %q: secp256r1, secp384r1 or secp521r1", clip(*curve))
		}
		fmt.Fprintf(&in, "<algorithm>ecc</algorithm><ecc-curve>%s</ecc-curve>", *curve)
		what = "ECC " + *curve
	case "ed25519":
		if *size != 0 || *curve != "" {
			return usagef("--size and --curve are for rsa and ecc; ed25519 keys take neither")
		}
		in.WriteString("<algorithm>ed25519</algorithm>")
		what = "Ed25519"
	default:
		return usagef("--algorithm %q: rsa, ecc or ed25519", clip(*alg))
	}
	if *storage != "file" && *storage != "tpm" {
		return usagef("--storage %q: file or tpm", clip(*storage))
	}
	fmt.Fprintf(&in, "<key-storage>%s</key-storage>", *storage)
	if err := e.needPassword(); err != nil {
		return err
	}
	stop := e.startProgress(fmt.Sprintf("generating %s key %s (%s)", what, pos[0], *storage))
	body, err := e.c.rpc(ctx, `<generate-private-key xmlns="`+pkiNS+`">`+in.String()+`</generate-private-key>`)
	stop()
	if err != nil {
		return err
	}
	l := leaves(body)
	res := map[string]string{"name": first(l["name"]), "key-algorithm": first(l["key-algorithm"]), "key-storage": first(l["key-storage"])}
	return e.emit(view{data: res, render: func(w io.Writer, _ int) {
		fmt.Fprintf(w, "key %s generated: %s, stored in %s\n", res["name"], res["key-algorithm"], res["key-storage"])
	}})
}

func keyDelete(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("key delete", flag.ContinueOnError)
	force := fs.Bool("force", false, "delete the key even while a certificate or an enrollment uses it")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkName("key name", pos[0]); err != nil {
		return err
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	if _, err := e.c.rpc(ctx, fmt.Sprintf(`<delete-private-key xmlns="%s"><name>%s</name><force>%t</force></delete-private-key>`, pkiNS, pos[0], *force)); err != nil {
		return err
	}
	res := map[string]string{"name": pos[0], "result": "deleted"}
	return e.emit(view{data: res, render: func(w io.Writer, _ int) {
		fmt.Fprintf(w, "key %s deleted\n", pos[0])
	}})
}

// enrollCommand runs enroll-certificate; a result other than enrolled or
// renewed exits 1 with the agent's message.
func enrollCommand(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	force := fs.Bool("force", false, "renew now even if the certificate in force is not due")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkName("certificate name", pos[0]); err != nil {
		return err
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	stop := e.startProgress("enrolling " + pos[0] + " with its CA")
	body, err := e.c.rpc(ctx, fmt.Sprintf(`<enroll-certificate xmlns="%s"><name>%s</name><force>%t</force></enroll-certificate>`, pkiNS, pos[0], *force))
	stop()
	if err != nil {
		return err
	}
	l := leaves(body)
	res := map[string]string{"name": pos[0], "result": first(l["result"]), "fingerprint-sha256": first(l["fingerprint-sha256"]),
		"not-after": first(l["not-after"]), "message": first(l["message"])}
	if err := e.emit(view{data: res, render: func(w io.Writer, _ int) {
		fmt.Fprintf(w, "%s: %s", pos[0], res["result"])
		if res["not-after"] != "" {
			fmt.Fprintf(w, ", valid until %s", res["not-after"])
		}
		if res["message"] != "" {
			fmt.Fprintf(w, " (%s)", res["message"])
		}
		fmt.Fprintln(w)
	}}); err != nil {
		return err
	}
	if r := res["result"]; r != "enrolled" && r != "renewed" {
		return fmt.Errorf("enrollment of %s: %s", pos[0], r)
	}
	return nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

var (
	countryCode = regexp.MustCompile(`^[A-Z]{2}$`)
	dnsName     = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$`)
)

// sans parses --san: a comma-separated list of dns:, ip: and uri: entries.
func sans(s string) (map[string][]string, error) {
	out := map[string][]string{}
	if s == "" {
		return out, nil
	}
	for _, item := range strings.Split(s, ",") {
		kind, v, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || v == "" {
			return nil, usagef("--san %q: each entry is dns:NAME, ip:ADDRESS or uri:URI", clip(item))
		}
		switch strings.ToLower(kind) {
		case "dns":
			if len(v) > 253 || !dnsName.MatchString(v) {
				return nil, usagef("--san dns:%s: not a DNS name", clip(v))
			}
			out["dns"] = append(out["dns"], v)
		case "ip":
			if net.ParseIP(v) == nil {
				return nil, usagef("--san ip:%s: not an IP address", clip(v))
			}
			out["ip"] = append(out["ip"], v)
		case "uri":
			u, err := url.Parse(v)
			if err != nil || u.Scheme == "" {
				return nil, usagef("--san uri:%s: not an absolute URI", clip(v))
			}
			out["uri"] = append(out["uri"], v)
		case "email":
			return nil, usagef("--san email:%s: the agent's CSRs carry dns, ip and uri alternative names; --email puts an address in the subject", clip(v))
		default:
			return nil, usagef("--san %q: each entry is dns:NAME, ip:ADDRESS or uri:URI", clip(item))
		}
	}
	return out, nil
}

func csrCommand(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("csr", flag.ContinueOnError)
	cn := fs.String("cn", "", "subject common name (required, 1..64 characters)")
	san := fs.String("san", "", "subject alternative names: dns:NAME,ip:ADDRESS,uri:URI")
	org := fs.String("org", "", "subject organization (O)")
	ou := fs.String("ou", "", "subject organizational unit (OU)")
	country := fs.String("country", "", "subject country (C), two capital letters")
	state := fs.String("state", "", "subject state or province (ST)")
	locality := fs.String("locality", "", "subject locality (L)")
	email := fs.String("email", "", "subject e-mail address")
	days := fs.Int("days", 0, "validity period the CSR asks for, in days (1..3650; default 365)")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkName("key name", pos[0]); err != nil {
		return err
	}
	if n := len([]rune(*cn)); n < 1 || n > 64 {
		return usagef("--cn: the common name is required, 1 to 64 characters")
	}
	if *country != "" && !countryCode.MatchString(*country) {
		return usagef("--country %q: two capital letters, e.g. NL", clip(*country))
	}
	for _, f := range []struct {
		flag, v string
		max     int
	}{{"--org", *org, 64}, {"--ou", *ou, 64}, {"--state", *state, 128}, {"--locality", *locality, 128}, {"--email", *email, 128}} {
		if len([]rune(f.v)) > f.max {
			return usagef("%s: at most %d characters", f.flag, f.max)
		}
	}
	if *email != "" && !strings.Contains(*email, "@") {
		return usagef("--email %q: not an e-mail address", clip(*email))
	}
	if *days < 0 || *days > 3650 {
		return usagef("--days %d: 1 to 3650", *days)
	}
	alt, err := sans(*san)
	if err != nil {
		return err
	}
	var in strings.Builder
	fmt.Fprintf(&in, "<name>%s</name><common-name>%s</common-name>", pos[0], escape(*cn))
	for _, f := range []struct{ leaf, v string }{{"country-name", *country}, {"state-province-name", *state}, {"locality-name", *locality},
		{"organization-name", *org}, {"organizational-unit-name", *ou}, {"email-address", *email}} {
		if f.v != "" {
			fmt.Fprintf(&in, "<%s>%s</%s>", f.leaf, escape(f.v), f.leaf)
		}
	}
	if len(alt) > 0 {
		in.WriteString("<subject-alt-name>")
		for _, k := range []string{"dns", "ip", "uri"} {
			for _, v := range alt[k] {
				fmt.Fprintf(&in, "<%s>%s</%s>", k, escape(v), k)
			}
		}
		in.WriteString("</subject-alt-name>")
	}
	if *days > 0 {
		fmt.Fprintf(&in, "<validity-period>%d</validity-period>", *days)
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	body, err := e.c.rpc(ctx, `<generate-csr xmlns="`+pkiNS+`">`+in.String()+`</generate-csr>`)
	if err != nil {
		return err
	}
	csr := first(leaves(body)["csr"])
	if csr == "" {
		return errors.New("the agent's reply holds no CSR")
	}
	return e.emit(view{data: map[string]string{"name": pos[0], "csr": csr}, render: func(w io.Writer, _ int) {
		fmt.Fprintln(w, strings.TrimSpace(csr))
	}})
}

// maxPEMFile bounds a certificate or chain file (the rpc's limit is 1 MiB).
const maxPEMFile = 1 << 20

// readPEMFile reads a certificate file (- : stdin) and refuses one that
// holds a private key before anything is sent.
func (e *env) readPEMFile(path string) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(e.stdin, maxPEMFile+1))
	} else {
		var f *os.File
		f, err = os.Open(path)
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(f, maxPEMFile+1))
			f.Close()
		}
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return "", usagef("%s: %v", clip(path), pe.Err)
		}
		return "", usagef("%s: %v", clip(path), err)
	}
	if len(b) > maxPEMFile {
		return "", usagef("%s: larger than 1 MiB", clip(path))
	}
	if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		return "", usagef("%s holds a private key: not sent (import takes the certificate only; the key stays where it was generated)", clip(path))
	}
	if !bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")) {
		return "", usagef("%s: no PEM certificate (-----BEGIN CERTIFICATE-----) in it", clip(path))
	}
	return string(b), nil
}

func importCommand(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("import", flag.ContinueOnError), args, 2, 2)
	if err != nil {
		return err
	}
	if err := checkName("certificate name", pos[0]); err != nil {
		return err
	}
	pemText, err := e.readPEMFile(pos[1])
	if err != nil {
		return err
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	body, err := e.c.rpc(ctx, `<import-certificate xmlns="`+pkiNS+`"><name>`+pos[0]+`</name><certificate>`+escape(pemText)+`</certificate></import-certificate>`)
	if err != nil {
		return err
	}
	l := leaves(body)
	res := map[string]string{"name": pos[0], "fingerprint-sha256": first(l["fingerprint-sha256"]), "status": first(l["status"])}
	return e.emit(view{data: res, render: func(w io.Writer, _ int) {
		fmt.Fprintf(w, "certificate %s imported: %s, SHA-256 %s\n", pos[0], res["status"], res["fingerprint-sha256"])
	}})
}

type refreshResult struct {
	URL     string `json:"url"`
	Success bool   `json:"success"`
	Message string `json:"message,omitempty"`
}

func crlRefresh(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("crl refresh", flag.ContinueOnError), args, 0, 1)
	if err != nil {
		return err
	}
	in := ""
	if len(pos) == 1 {
		u, err := url.Parse(pos[0])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
			return usagef("crl refresh %q: an http, https or file URL", clip(pos[0]))
		}
		in = "<url>" + escape(pos[0]) + "</url>"
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	stop := e.startProgress("fetching CRLs")
	body, err := e.c.rpc(ctx, `<refresh-certificate-revocation-list xmlns="`+pkiNS+`">`+in+`</refresh-certificate-revocation-list>`)
	stop()
	if err != nil {
		return err
	}
	var reply struct {
		Result []struct {
			URL     string `xml:"url"`
			Success bool   `xml:"success"`
			Message string `xml:"message"`
		} `xml:"result"`
	}
	if err := xml.Unmarshal([]byte("<r>"+body+"</r>"), &reply); err != nil {
		return fmt.Errorf("the agent's reply does not parse: %w", err)
	}
	var results []refreshResult
	failed := 0
	for _, r := range reply.Result {
		results = append(results, refreshResult{URL: r.URL, Success: r.Success, Message: r.Message})
		if !r.Success {
			failed++
		}
	}
	err = e.emit(view{data: map[string]any{"result": results}, render: func(w io.Writer, width int) {
		t := &table{headers: []string{"URL", "RESULT", "MESSAGE"}}
		for _, r := range results {
			t.add(r.URL, map[bool]string{true: "ok", false: "failed"}[r.Success], orDash(r.Message))
		}
		if len(results) == 0 {
			fmt.Fprintln(w, "no CRL source is configured or learned")
			return
		}
		t.render(w, width)
	}})
	if err == nil && failed > 0 {
		err = userErrorf("%d of %d CRLs could not be refreshed", failed, len(results))
	}
	return err
}

func peerValidate(ctx context.Context, e *env, args []string) error {
	pos, err := e.parse(flag.NewFlagSet("peer validate", flag.ContinueOnError), args, 3, 3)
	if err != nil {
		return err
	}
	if err := checkName("router", pos[0]); err != nil {
		return err
	}
	if err := checkName("peer", pos[1]); err != nil {
		return err
	}
	chain, err := e.readPEMFile(pos[2])
	if err != nil {
		return err
	}
	if err := e.needPassword(); err != nil {
		return err
	}
	body, err := e.c.rpc(ctx, `<validate-peer-certificate xmlns="`+pkiNS+`"><router>`+pos[0]+`</router><peer>`+pos[1]+`</peer><certificate>`+escape(chain)+`</certificate></validate-peer-certificate>`)
	if err != nil {
		return err
	}
	l := leaves(body)
	res := map[string]string{"router": pos[0], "peer": pos[1], "result": first(l["result"]), "reason": first(l["reason"])}
	err = e.emit(view{data: res, render: func(w io.Writer, _ int) {
		fmt.Fprintf(w, "peer %s of router %s: %s", pos[1], pos[0], res["result"])
		if res["reason"] != "" {
			fmt.Fprintf(w, " (%s)", res["reason"])
		}
		fmt.Fprintln(w)
	}})
	if err == nil && res["result"] != "valid" {
		err = userErrorf("peer %s is not valid: %s", pos[1], orDash(res["result"]))
	}
	return err
}
