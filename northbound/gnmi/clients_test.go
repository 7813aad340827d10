package gnmi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/gnmi/client"
	gclient "github.com/openconfig/gnmi/client/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
)

// The gNMI client package of github.com/openconfig/gnmi over real TLS.
func TestOpenconfigClient(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := ctxT(t)
	dial := func(user, pw string) (*gclient.Client, error) {
		impl, err := gclient.New(ctx, client.Destination{
			Addrs: []string{e.addr}, Timeout: 5 * time.Second,
			TLS:         &tls.Config{RootCAs: e.roots, ServerName: "localhost"},
			Credentials: &client.Credentials{Username: user, Password: pw},
		})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { impl.Close() })
		return impl.(*gclient.Client), nil
	}
	c, err := dial("admin", adminPW)
	if err != nil {
		t.Fatal(err)
	}
	caps, err := c.Capabilities(ctx, &gnmi.CapabilityRequest{})
	if err != nil || caps.GNMIVersion != Version {
		t.Fatalf("Capabilities: %v %v", caps, err)
	}
	if _, err := c.Set(ctx, &gnmi.SetRequest{Update: []*gnmi.Update{{Path: p(t, "/authority/trusted-ca-certificate[name=root]"), Val: jsonVal(caJSON)}}}); err != nil {
		t.Fatal(err)
	}
	g, err := c.Get(ctx, &gnmi.GetRequest{Path: []*gnmi.Path{p(t, "/authority/trusted-ca-certificate[name=root]/validation-mode")}, Encoding: gnmi.Encoding_JSON_IETF})
	if err != nil || string(g.Notification[0].Update[0].Val.GetJsonIetfVal()) != `"warn"` {
		t.Fatalf("Get: %v %v", g, err)
	}
	// Wrong password and viewer Set.
	bad, err := dial("admin", "wrong")
	if err == nil {
		_, err = bad.Get(ctx, &gnmi.GetRequest{})
	}
	if code(err) != "Unauthenticated" {
		t.Errorf("wrong password: %v", err)
	}
	v, err := dial("viewer", viewerPW)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Set(ctx, &gnmi.SetRequest{Delete: []*gnmi.Path{p(t, "/authority")}}); code(err) != "PermissionDenied" {
		t.Errorf("viewer Set: %v", err)
	}

	// Subscribe ONCE through client.Query.
	var mu sync.Mutex
	var got []string
	q := client.Query{
		// PROTO: typed scalars, which client.Update carries as Go values
		// (JSON values come as value.DeprecatedScalar).
		Type: client.Once, Queries: []client.Path{{"authority", "trusted-ca-certificate"}}, Encoding: gnmi.Encoding_PROTO,
		NotificationHandler: func(n client.Notification) error {
			mu.Lock()
			defer mu.Unlock()
			switch x := n.(type) {
			case client.Update:
				got = append(got, strings.Join(x.Path, "/")+"="+fmt.Sprint(x.Val))
			case client.Sync:
				got = append(got, "sync")
			}
			return nil
		},
	}
	if err := c.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	for {
		if err := c.Recv(); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, client.ErrStopReading) {
				t.Fatal(err)
			}
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	joined := strings.Join(got, "\n")
	if !strings.Contains(joined, "authority/trusted-ca-certificate/root/validation-mode=warn") || !strings.HasSuffix(joined, "sync") {
		t.Errorf("ONCE via client/gnmi:\n%s", joined)
	}
}

var gnmiCLI = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "gnmi_cli")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gnmi_cli")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/openconfig/gnmi/cmd/gnmi_cli").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building gnmi_cli: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := gnmiCLI(); err == nil && bin != "" {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// cli runs gnmi_cli against the env.
func (e *env) cli(t *testing.T, user, pw string, args ...string) (string, error) {
	t.Helper()
	bin, err := gnmiCLI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-address", e.addr, "-ca_crt", e.caFile, "-server_name", "localhost", "-with_user_pass", "-timeout", "5s"}, args...)...)
	cmd.Env = append(os.Environ(), "GNMI_USER="+user, "GNMI_PASS="+pw)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The gnmi_cli command of github.com/openconfig/gnmi, built by the test.
func TestGnmiCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gnmi_cli")
	}
	e := newEnv(t, envOpts{})
	// gnmi_cli prints prototext, whose spacing varies at random: parse it.
	out, err := e.cli(t, "admin", adminPW, "-capabilities")
	var caps gnmi.CapabilityResponse
	if err == nil {
		err = prototext.Unmarshal([]byte(out), &caps)
	}
	if err != nil || caps.GetGNMIVersion() != Version || !slices.ContainsFunc(caps.GetSupportedModels(), func(m *gnmi.ModelData) bool {
		return m.GetName() == "pki-authority"
	}) {
		t.Fatalf("capabilities: %v\n%s", err, out)
	}
	setReq := `update: <path: <elem: <name: "authority"> elem: <name: "trusted-ca-certificate" key: <key: "name" value: "root">>> val: <json_ietf_val: '{"name":"root","content":"PEM","validation-mode":"warn"}'>>`
	if out, err := e.cli(t, "admin", adminPW, "-set", "-proto", setReq); err != nil {
		t.Fatalf("set: %v\n%s", err, out)
	}
	if e.store.Running().GetAuthority().GetTrustedCaCertificate("root") == nil {
		t.Fatal("gnmi_cli Set did not commit")
	}
	out, err = e.cli(t, "admin", adminPW, "-get", "-proto", `path: <elem: <name: "authority"> elem: <name: "trusted-ca-certificate" key: <key: "name" value: "*">> elem: <name: "validation-mode">> encoding: JSON_IETF type: CONFIG`)
	if err != nil || !strings.Contains(out, `warn`) {
		t.Fatalf("get: %v\n%s", err, out)
	}
	// A multi-op Set that fails midway changes nothing.
	before := e.store.Running()
	bad := `delete: <elem: <name: "authority"> elem: <name: "trusted-ca-certificate" key: <key: "name" value: "root">>> update: <path: <elem: <name: "authority"> elem: <name: "router" key: <key: "name" value: "r1">> elem: <name: "peer-validation">> val: <string_val: "maybe">>`
	out, err = e.cli(t, "admin", adminPW, "-set", "-proto", bad)
	if err == nil || !strings.Contains(out, "InvalidArgument") || !strings.Contains(out, "peer-validation") {
		t.Errorf("failing set: %v\n%s", err, out)
	}
	if e.store.Running() != before {
		t.Error("failing multi-op Set changed running")
	}
	// Wrong password, viewer Set.
	if out, err := e.cli(t, "admin", "wrong", "-get", "-proto", `path: <elem: <name: "authority">>`); err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("wrong password: %v\n%s", err, out)
	}
	if out, err := e.cli(t, "viewer", viewerPW, "-set", "-proto", setReq); err == nil || !strings.Contains(out, "PermissionDenied") {
		t.Errorf("viewer set: %v\n%s", err, out)
	}
	// Subscribe ONCE.
	out, err = e.cli(t, "viewer", viewerPW, "-q", "authority/trusted-ca-certificate", "-qt", "once", "-dt", "single")
	if err != nil || !strings.Contains(out, "validation-mode") || !strings.Contains(out, "warn") {
		t.Errorf("subscribe once: %v\n%s", err, out)
	}
	// Subscribe POLL, polled every 200ms (gnmi_cli displays a leaf again
	// only when it changes).
	out, err = e.cli(t, "viewer", viewerPW, "-q", "authority/trusted-ca-certificate", "-qt", "p", "-pi", "200ms", "-sd", "700ms", "-dt", "single")
	if err != nil || !strings.Contains(out, "validation-mode") {
		t.Errorf("subscribe poll: %v\n%s", err, out)
	}
}

// An alarm raised by the engine reaches a gnmi_cli STREAM subscription.
func TestGnmiCLIStreamAlarm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gnmi_cli")
	}
	e := newEnv(t, envOpts{})
	bin, err := gnmiCLI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-address", e.addr, "-ca_crt", e.caFile, "-server_name", "localhost", "-with_user_pass",
		"-q", "alarms", "-qt", "s", "-sd", "10s", "-dt", "single")
	cmd.Env = append(os.Environ(), "GNMI_USER=viewer", "GNMI_PASS="+viewerPW)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen bytes.Buffer
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	n := 0
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("gnmi_cli ended:\n%s", seen.String())
			}
			seen.WriteString(l + "\n")
			if strings.Contains(l, "crl-unreachable:http") && strings.Contains(l, "severity") {
				return
			}
		case <-tick.C:
			// Raise the alarm (again, with a new text, until the stream
			// is registered and sees it).
			n++
			d := &gen.Device{}
			a := d.GetOrCreateAlarms().GetOrCreateAlarm("crl-unreachable:http://x/y.crl")
			a.Severity = gen.PkiAuthority_Severity_major
			a.Text = ygotString(fmt.Sprintf("CRL unreachable (attempt %d)", n))
			e.state.set(d)
			ch, _ := api.Diff(&gen.Device{}, d)
			e.bus.Publish(api.Event{Kind: api.EventState, Time: time.Now(), Changes: ch})
		case <-deadline:
			t.Fatalf("alarm not seen by gnmi_cli:\n%s", seen.String())
		}
	}
}

// gnmi_cli, with the JSON encoding gnmic uses by default: what -get prints
// is written back with -set at the root, a list entry and a leaf, and
// running is unchanged.
func TestGnmiCLIGetJSONSetRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gnmi_cli")
	}
	e := newEnv(t, envOpts{})
	provision(t, e.admin())
	before := e.store.Running()
	want, err := agent.EmitJSON(before)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/authority/router[name=r1]", "/authority/router[name=r1]/peer-validation"} {
		getReq := &gnmi.GetRequest{Path: []*gnmi.Path{p(t, path)}, Encoding: gnmi.Encoding_JSON, Type: gnmi.GetRequest_CONFIG}
		out, err := e.cli(t, "admin", adminPW, "-get", "-proto", prototext.Format(getReq))
		if err != nil {
			t.Fatalf("get %s: %v\n%s", path, err, out)
		}
		var resp gnmi.GetResponse
		if err := prototext.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("gnmi_cli -get printed no GetResponse: %v\n%s", err, out)
		}
		set := &gnmi.SetRequest{}
		for _, n := range resp.GetNotification() {
			set.Replace = append(set.Replace, n.GetUpdate()...)
		}
		if len(set.Replace) == 0 {
			t.Fatalf("get %s: no update\n%s", path, out)
		}
		if out, err := e.cli(t, "admin", adminPW, "-set", "-proto", prototext.Format(set)); err != nil {
			t.Fatalf("set of what get %s printed: %v\n%s", path, err, out)
		}
		got, err := agent.EmitJSON(e.store.Running())
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		json.Unmarshal(want, &a)
		json.Unmarshal(got, &b)
		// Defaults written back become explicit: compare with them filled in.
		if diff := cmp.Diff(withDefaultsJSON(t, a), withDefaultsJSON(t, b)); diff != "" {
			t.Errorf("running after get -> set of %s (-before +after):\n%s", path, diff)
		}
	}
}

// withDefaultsJSON renders an RFC 7951 tree with its defaults filled in.
func withDefaultsJSON(t *testing.T, v any) any {
	t.Helper()
	b, _ := json.Marshal(v)
	d := &gen.Device{}
	if err := gen.Unmarshal(b, d); err != nil {
		t.Fatal(err)
	}
	fillDefaults(d)
	out, err := agent.EmitJSON(d)
	if err != nil {
		t.Fatal(err)
	}
	var r any
	json.Unmarshal(out, &r)
	return r
}
