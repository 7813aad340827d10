package main

import (
	"context"
	"encoding/pem"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/internal/yanglinttest"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

// libnetconf2Packages are the Debian packages the C client builds with.
var libnetconf2Packages = []string{"gcc", "pkg-config", "libnetconf2-dev", "libyang2-dev", "libssh-dev"}

// buildLibnetconf2Client compiles testdata/libnetconf2_client.c. It skips
// the test only when the packages are missing and cannot be installed
// (scripts/install-deps.sh, which make test runs, installs them).
func buildLibnetconf2Client(t *testing.T) string {
	t.Helper()
	have := func() error {
		if _, err := exec.LookPath("gcc"); err != nil {
			return err
		}
		return exec.Command("pkg-config", "--exists", "libnetconf2", "libyang").Run()
	}
	if err := have(); err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("libnetconf2 client: %v; need Debian %v (make deps installs them; not root, so not installing here)", err, libnetconf2Packages)
		}
		out, ierr := exec.Command("../../scripts/install-deps.sh").CombinedOutput()
		if err := have(); err != nil {
			t.Skipf("libnetconf2 client: Debian %v could not be installed (%v, install-deps: %v):\n%s", libnetconf2Packages, err, ierr, out)
		}
	}
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "libnetconf2", "libyang").Output()
	if err != nil {
		t.Fatalf("pkg-config libnetconf2 libyang: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "libnetconf2_client")
	args := append([]string{"-Wall", "-Wextra", "-Werror", "-o", bin, "testdata/libnetconf2_client.c"}, strings.Fields(string(flags))...)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, out)
	}
	return bin
}

// TestLibnetconf2Client drives the real binary with a client built on
// libnetconf2 2.0.24 (Debian), as netopeer2-cli is: it builds every rpc
// against the modules and features it learns from the agent (hello, YANG
// library, get-schema), so a module or feature not advertised fails the
// step client-side ("Term node "candidate" not found ... perhaps a
// required feature is disabled", "Missing "notifications" schema").
func TestLibnetconf2Client(t *testing.T) {
	bin := buildLibnetconf2Client(t)
	p := runAgentBinary(t, filepath.Join(t.TempDir(), "state"))
	addr := logAttr(p.logged(t, "serving NETCONF"), "addr")
	host, port, _ := strings.Cut(addr, ":")
	schemas, cwd := t.TempDir(), t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, host, port, "admin", adminPassword, schemas)
	cmd.Dir = cwd // libyang also searches the working directory: keep it empty
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil || !strings.Contains(out, "\nALL OK\n") {
		t.Fatalf("libnetconf2 client: %v\n%s\nagent log:\n%s", err, out, p.log())
	}
	for _, step := range []string{
		"ok connect session-id ",
		"ok feature ietf-netconf:candidate", "ok feature ietf-netconf:confirmed-commit",
		"ok feature ietf-netconf:validate", "ok feature ietf-netconf:rollback-on-error",
		"ok feature notifications:", "ok feature ietf-netconf-notifications:", "ok feature pki-authority:",
		"ok lock candidate", "ok edit-config candidate\n", "ok validate candidate", "ok commit\n",
		"ok confirmed commit", "ok confirming commit", "ok running holds both routers",
		"ok create-subscription with replay", "notification nc-notifications:replayComplete",
		"notification ietf-netconf-notifications:netconf-config-change", "ok notifications replayComplete then netconf-config-change",
		"ok unlock candidate",
	} {
		if !strings.Contains(out, step) {
			t.Errorf("libnetconf2 client output lacks %q", step)
		}
	}
	// The one get-schema the client may see refused is its probe for
	// ietf-netconf-nmda (get-data), which the agent does not implement.
	refused := regexp.MustCompile(`operation=get-schema .*module ([a-z0-9-]+)[ :]`).FindAllStringSubmatch(p.log(), -1)
	if n := strings.Count(p.log(), "operation=get-schema"); n != len(refused) {
		t.Errorf("%d get-schema refusals logged, %d naming a module:\n%s", n, len(refused), p.log())
	}
	for _, m := range refused {
		if m[1] != "ietf-netconf-nmda" {
			t.Errorf("get-schema of %s refused; the client needs it", m[1])
		}
	}
	logged := regexp.MustCompile(`(?m)^log (warning|error): .*$`).FindAllString(out, -1)
	if len(logged) > len(refused) {
		t.Errorf("libnetconf2/libyang complained:\n%s", strings.Join(logged, "\n"))
	}
	if _, err := os.Stat(filepath.Join(schemas, "ietf-netconf@2013-09-29.yang")); err != nil {
		t.Errorf("the client did not fetch ietf-netconf with get-schema: %v", err)
	}
}

// TestNETCONFRepliesValidateWithYanglint provisions the real agent (a
// trusted CA chain, a router, a key, a CSR signed and imported), then
// checks the data of get (state included, with the NETCONF monitoring
// state) and get-config (running and candidate, explicit and report-all),
// and the notifications replayed to a subscriber, with libyang's yanglint
// against every module in yang/, with the features the agent advertises.
func TestNETCONFRepliesValidateWithYanglint(t *testing.T) {
	if _, err := exec.LookPath("yanglint"); err != nil {
		t.Fatalf("yanglint not installed (make test installs libyang2-tools): %v", err)
	}
	p := runAgentBinary(t, filepath.Join(t.TempDir(), "state"))
	c := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	ca := testpki.Must(testpki.New(time.Now()).Hierarchy(2))
	c.must(`<edit-config><target><candidate/></target><config><authority `+pkaNS+`>`+
		`<trusted-ca-certificate><name>corp</name><content>`+html.EscapeString(string(testpki.PEM(ca[0])))+`</content></trusted-ca-certificate>`+
		`<client-certificate><name>router</name></client-certificate>`+
		`<router><name>r1</name><peer-validation>true</peer-validation><certificate-failure-action>fail-hard</certificate-failure-action></router>`+
		`</authority></config></edit-config>`, "<ok/>")
	// Confirmed, then confirmed: netconf-confirmed-commit start and complete.
	c.must(`<commit><confirmed/><confirm-timeout>600</confirm-timeout></commit>`, "<ok/>")
	c.must(`<commit/>`, "<ok/>")
	c.must(`<generate-private-key `+pkaNS+`><name>router</name><algorithm>ecc</algorithm><ecc-curve>secp256r1</ecc-curve></generate-private-key>`, ">file</key-storage>")
	reply := c.must(`<generate-csr `+pkaNS+`><name>router</name><common-name>router.example.net</common-name></generate-csr>`, "BEGIN CERTIFICATE REQUEST")
	m := csrElem.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("no csr in %s", reply)
	}
	leafCert := issue(t, ca[1], []byte(html.UnescapeString(m[1])))
	chainPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafCert.Raw})) + string(testpki.PEM(ca[1]))
	c.must(`<import-certificate `+pkaNS+`><name>router</name><certificate>`+html.EscapeString(chainPEM)+`</certificate></import-certificate>`, "</fingerprint")
	// An uncommitted change, so candidate differs from running.
	c.must(`<edit-config><target><candidate/></target><config><authority `+pkaNS+`><router><name>r2</name></router></authority></config></edit-config>`, "<ok/>")
	c.must(`<lock><target><running/></target></lock>`, "<ok/>") // a lock in /netconf-state/datastores

	const wd = `<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">report-all</with-defaults>`
	for _, tc := range []struct {
		desc, op string
		typ      yanglinttest.Type
		want     []string // in the data, so the check covers them
	}{
		{"get", `<get/>`, yanglinttest.Get, []string{"<netconf-state", "<sessions>", "<locks>", "<yang-library", "<modules-state", "<streams>", "<certificates", "expiring-within-month"}},
		{"get report-all", `<get>` + wd + `</get>`, yanglinttest.Get, []string{"<validation-mode>"}},
		{"get-config running", `<get-config><source><running/></source></get-config>`, yanglinttest.GetConfig, []string{"<name>r1</name>", "<name>corp</name>"}},
		{"get-config candidate report-all", `<get-config><source><candidate/></source>` + wd + `</get-config>`, yanglinttest.GetConfig, []string{"<name>r2</name>", "<validation-mode>"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			data := replyData(t, c.rpc(tc.op))
			for _, w := range tc.want {
				if !strings.Contains(data, w) {
					t.Fatalf("%s data lacks %s:\n%.2000s", tc.desc, w, data)
				}
			}
			yanglinttest.CheckNETCONF(t, tc.typ, []byte(data), nil)
		})
	}

	// Notifications, replayed from the start: each checked as nc-notif.
	t.Run("notifications", func(t *testing.T) {
		n := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
		if got := n.rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><startTime>2000-01-01T00:00:00Z</startTime></create-subscription>`); !strings.Contains(got, "<ok/>") {
			t.Fatal(got)
		}
		// The instance-identifiers of netconf-config-change name nodes
		// of running: yanglint resolves them in the data of a <get>.
		state := []byte(replyData(t, c.rpc(`<get/>`)))
		seen := map[string]bool{}
		for !seen["replayComplete"] {
			msg, err := n.fr.ReadMessage()
			if err != nil {
				t.Fatalf("notification: %v (seen %v)", err, seen)
			}
			m := notifName.FindStringSubmatch(string(msg))
			if m == nil {
				t.Fatalf("not a notification: %.500s", msg)
			}
			seen[m[1]] = true
			yanglinttest.CheckNETCONF(t, yanglinttest.Notification, msg, state)
		}
		for _, want := range []string{"netconf-session-start", "netconf-config-change", "netconf-confirmed-commit", "alarm-notification", "certificate-event"} {
			if !seen[want] {
				t.Errorf("no %s replayed (seen %v)", want, seen)
			}
		}
	})
}

var notifName = regexp.MustCompile(`^<notification [^>]*><eventTime>[^<]*</eventTime><([A-Za-z-]+)[ />]`)

var dataElem = regexp.MustCompile(`(?s)<data>(.*)</data>\s*</rpc-reply>\s*$`)

// replyData returns what the <data> of an rpc-reply holds, the namespace
// declarations of the agent's elements kept.
func replyData(t *testing.T, reply string) string {
	t.Helper()
	if !strings.Contains(reply, `<rpc-reply xmlns="`+ncxml.BaseNS+`"`) {
		t.Fatalf("not a base rpc-reply: %.500s", reply)
	}
	m := dataElem.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("no <data> in %.1000s", reply)
	}
	return m[1]
}
