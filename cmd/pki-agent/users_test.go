package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/pkiagent/pkiagent/northbound/auth"
)

const sysNS = `xmlns="urn:pkiagent:yang:pki-agent-system"`

// usersAgent is a running agent with the addresses its clients need.
type usersAgent struct {
	t                      *testing.T
	p                      *agentProcess
	state, gnmiAddr, ncAdr string
}

func startUsersAgent(t *testing.T, state string) *usersAgent {
	p := runAgentBinary(t, state)
	return &usersAgent{t: t, p: p, state: state,
		gnmiAddr: logAttr(p.logged(t, "gNMI listening"), "addr"), ncAdr: logAttr(p.logged(t, "serving NETCONF"), "addr")}
}

// gnmiAs is a gNMI client that logs in as user with password.
func (a *usersAgent) gnmiAs(user, password string) gpb.GNMIClient {
	a.t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(a.state, "tls", "ca.pem"))
	if err != nil {
		a.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cc, err := grpc.NewClient(a.gnmiAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})),
		grpc.WithPerRPCCredentials(userPassword{user, password}))
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { cc.Close() })
	return gpb.NewGNMIClient(cc)
}

// gnmiLogin reports whether user gets in over gNMI (a Get of /system).
func (a *usersAgent) gnmiLogin(ctx context.Context, user, password string) error {
	_, err := a.gnmiAs(user, password).Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{sysPath()}, Encoding: gpb.Encoding_JSON_IETF})
	return err
}

// sshLogin reports whether user gets in over NETCONF (SSH password).
func (a *usersAgent) sshLogin(user, password string) error {
	conn, err := ssh.Dial("tcp", a.ncAdr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err == nil {
		conn.Close()
	}
	return err
}

// canLogIn checks that user gets in with password over both protocols,
// or is refused over both.
func (a *usersAgent) canLogIn(ctx context.Context, user, password string, want bool) {
	a.t.Helper()
	gerr := a.gnmiLogin(ctx, user, password)
	serr := a.sshLogin(user, password)
	if want && (gerr != nil || serr != nil) {
		a.t.Fatalf("%s cannot log in: gNMI %v, SSH %v\n%s", user, gerr, serr, tailLog(a.p, 20))
	}
	if !want && (status.Code(gerr) != codes.Unauthenticated || serr == nil) {
		a.t.Fatalf("%s logged in with a password that should be refused: gNMI %v, SSH %v", user, gerr, serr)
	}
}

func sysPath(elems ...*gpb.PathElem) *gpb.Path {
	return &gpb.Path{Elem: append([]*gpb.PathElem{{Name: "system"}, {Name: "aaa"}}, elems...)}
}

func userElem(name string) *gpb.PathElem {
	return &gpb.PathElem{Name: "user", Key: map[string]string{"name": name}}
}

func setUser(ctx context.Context, g gpb.GNMIClient, name, role, password string) error {
	v, _ := json.Marshal(map[string]string{"name": name, "role": role, "password": password})
	_, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: sysPath(userElem(name)),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: v}}}}})
	return err
}

// noSecret fails when a read shows a password, a hash or a cleartext.
func noSecret(t *testing.T, what, got string, cleartexts ...string) {
	t.Helper()
	for _, bad := range append([]string{"password", "$argon2id$", "$2a$", "$2b$"}, cleartexts...) {
		if strings.Contains(got, bad) {
			t.Fatalf("%s shows %q:\n%.2000s", what, bad, got)
		}
	}
}

// TestUsersAreConfiguration: a user added over gNMI logs in at once over
// gNMI and NETCONF; its password changed over NETCONF refuses the old one
// and takes the new one; deleted, it is refused; each step holds across a
// restart and a kill -9. No read (gNMI Get, Subscribe, NETCONF get-config,
// get) and no file of the state directory shows a password or its hash
// (the hash only in the datastore files, mode 0600), and only an admin may
// edit the users.
func TestUsersAreConfiguration(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := startUsersAgent(t, state)
	admin := a.gnmiAs("admin", adminPassword)

	// NETCONF serves the module: yang-library, get-schema.
	nc0 := dialNETCONF(t, a.ncAdr)
	nc0.must(`<get><filter type="subtree"><yang-library xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/></filter></get>`, "<name>pki-agent-system</name>")
	nc0.must(`<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>pki-agent-system</identifier></get-schema>`, "module pki-agent-system")

	// A live subscription sees the new user, never its password.
	sub, err := admin.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_JSON_IETF,
		Subscription: []*gpb.Subscription{{Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "system"}}}, Mode: gpb.SubscriptionMode_ON_CHANGE}}}}}); err != nil {
		t.Fatal(err)
	}
	var streamed strings.Builder
	for {
		r, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		streamed.WriteString(prototext.Format(r))
		if r.GetSyncResponse() {
			break
		}
	}

	if err := setUser(ctx, admin, "alice", "operator", "alice-pass-1"); err != nil {
		t.Fatalf("add alice: %v", err)
	}
	a.canLogIn(ctx, "alice", "alice-pass-1", true)
	for {
		r, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		s := prototext.Format(r)
		streamed.WriteString(s)
		if strings.Contains(s, "alice") && strings.Contains(s, "operator") {
			break
		}
	}
	noSecret(t, "Subscribe", streamed.String(), "alice-pass-1")

	// An operator may read the users, not edit them.
	alice := a.gnmiAs("alice", "alice-pass-1")
	if err := setUser(ctx, alice, "mallory", "admin", "mallory-pass"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("operator adds a user: %v", err)
	}
	nc := dialNETCONFAs(t, a.ncAdr, "alice", "alice-pass-1")
	nc.must(`<edit-config><target><candidate/></target><config><system `+sysNS+`><aaa><user><name>alice</name><role>admin</role></user></aaa></system></config></edit-config>`, "access-denied")

	reads := func() {
		t.Helper()
		for _, typ := range []gpb.GetRequest_DataType{gpb.GetRequest_CONFIG, gpb.GetRequest_ALL} {
			pw := sysPath(userElem("alice"), &gpb.PathElem{Name: "password"})
			if _, err := admin.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{pw}, Type: typ}); status.Code(err) != codes.NotFound {
				t.Fatalf("Get of the password: %v", err)
			}
			for _, p := range []*gpb.Path{{}, sysPath()} {
				r, err := admin.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{p}, Type: typ, Encoding: gpb.Encoding_JSON_IETF})
				if err != nil {
					t.Fatalf("Get %v: %v", p, err)
				}
				noSecret(t, "gNMI Get", prototext.Format(r), "alice-pass")
			}
		}
		once, err := admin.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		once.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
			Mode: gpb.SubscriptionList_ONCE, Encoding: gpb.Encoding_JSON_IETF, Subscription: []*gpb.Subscription{{Path: &gpb.Path{}}}}}})
		var all strings.Builder
		for {
			r, err := once.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			all.WriteString(prototext.Format(r))
		}
		if !strings.Contains(all.String(), "alice") {
			t.Fatalf("Subscribe ONCE lacks alice:\n%.2000s", all.String())
		}
		noSecret(t, "Subscribe ONCE", all.String(), "alice-pass")
		c := dialNETCONF(t, a.ncAdr)
		for _, op := range []string{`<get-config><source><running/></source></get-config>`, `<get-config><source><candidate/></source></get-config>`, `<get/>`} {
			r := c.must(op, "<name>alice</name>")
			noSecret(t, "NETCONF "+op, r, "alice-pass")
		}
	}
	reads()

	// Restart: alice is still there.
	if err := a.p.stop(); err != nil {
		t.Fatal(err)
	}
	a = startUsersAgent(t, state)
	a.canLogIn(ctx, "alice", "alice-pass-1", true)

	// The password changed over NETCONF: the old one is refused at once.
	c := dialNETCONF(t, a.ncAdr)
	c.must(`<edit-config><target><candidate/></target><config><system `+sysNS+`><aaa><user><name>alice</name><password>alice-pass-2</password></user></aaa></system></config></edit-config>`, "<ok/>")
	noSecret(t, "candidate", c.must(`<get-config><source><candidate/></source></get-config>`, "alice"), "alice-pass")
	c.must(`<commit/>`, "<ok/>")
	a.canLogIn(ctx, "alice", "alice-pass-1", false)
	a.canLogIn(ctx, "alice", "alice-pass-2", true)
	admin = a.gnmiAs("admin", adminPassword)
	reads()

	// kill -9: the change holds.
	kill9(t, a.p)
	a = startUsersAgent(t, state)
	a.canLogIn(ctx, "alice", "alice-pass-2", true)
	a.canLogIn(ctx, "alice", "alice-pass-1", false)

	// Deleted over gNMI: refused at once, and after a restart.
	admin = a.gnmiAs("admin", adminPassword)
	if _, err := admin.Set(ctx, &gpb.SetRequest{Delete: []*gpb.Path{sysPath(userElem("alice"))}}); err != nil {
		t.Fatal(err)
	}
	a.canLogIn(ctx, "alice", "alice-pass-2", false)
	if err := a.p.stop(); err != nil {
		t.Fatal(err)
	}
	a = startUsersAgent(t, state)
	a.canLogIn(ctx, "alice", "alice-pass-2", false)
	a.canLogIn(ctx, "admin", adminPassword, true)
	if err := a.p.stop(); err != nil {
		t.Fatal(err)
	}

	// No cleartext anywhere on disk; the hashes only in the datastore,
	// readable by the agent alone.
	filepath.Walk(state, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, pw := range []string{"alice-pass-1", "alice-pass-2", adminPassword} {
			if strings.Contains(string(b), pw) {
				t.Errorf("%s holds a cleartext password", path)
			}
		}
		if strings.Contains(string(b), "$argon2id$") && info.Mode().Perm() != 0o600 {
			t.Errorf("%s holds password hashes with mode %v", path, info.Mode().Perm())
		}
		return nil
	})
}

// TestUserEditsRefused: weak, empty, huge and key-material passwords, an
// unknown role, a new user without a password and the removal or demotion
// of the last admin are refused over gNMI and NETCONF, with errors that
// state the rule and never quote the value.
func TestUserEditsRefused(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startUsersAgent(t, state)
	admin := a.gnmiAs("admin", adminPassword)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	huge := strings.Repeat("Ab1-", 25000)
	for _, tc := range []struct {
		desc, role, password, want string
	}{
		{"empty password", "viewer", "", "empty"},
		{"short password", "viewer", "Ab1-x", "8 to 128 characters"},
		{"the user name", "viewer", "Bobby-The-User", "user name"},
		{"one character repeated", "viewer", "aaaaaaaaaa", "repeated"},
		{"huge password", "viewer", huge, "8 to 128 characters"},
		{"private key as password", "viewer", keyPEM, "private key"},
		{"unknown role", "root", "good-pass-1", "role"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := setUser(ctx, admin, "bobby-the-user", tc.role, tc.password)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("gNMI: %v", err)
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) || strings.Contains(err.Error(), "PRIVATE") {
				t.Fatalf("gNMI error quotes the value: %v", err)
			}
			c := dialNETCONF(t, a.ncAdr)
			pw := "<password>" + strings.ReplaceAll(tc.password, "\n", "&#10;") + "</password>"
			r := c.rpc(`<edit-config><target><candidate/></target><config><system ` + sysNS + `><aaa><user><name>bobby-the-user</name><role>` + tc.role + `</role>` + pw + `</user></aaa></system></config></edit-config>`)
			if strings.Contains(r, "<ok/>") {
				r = c.rpc(`<commit/>`)
				c.rpc(`<discard-changes/>`)
			}
			if !strings.Contains(r, "rpc-error") || !strings.Contains(r, tc.want) {
				t.Fatalf("NETCONF: %.1000s", r)
			}
			if tc.password != "" && strings.Contains(r, tc.password) || strings.Contains(r, "PRIVATE") {
				t.Fatalf("NETCONF error quotes the value: %.1000s", r)
			}
		})
	}
	// A new user needs a password.
	v, _ := json.Marshal(map[string]string{"name": "nopw", "role": "viewer"})
	_, err := admin.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: sysPath(userElem("nopw")), Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: v}}}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "needs one") {
		t.Fatalf("user without a password: %v", err)
	}
	// The last admin can be neither deleted nor demoted...
	if _, err := admin.Set(ctx, &gpb.SetRequest{Delete: []*gpb.Path{sysPath(userElem("admin"))}}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "last admin") {
		t.Fatalf("delete the last admin: %v", err)
	}
	c := dialNETCONF(t, a.ncAdr)
	c.must(`<edit-config><target><candidate/></target><config><system `+sysNS+`><aaa><user><name>admin</name><role>viewer</role></user></aaa></system></config></edit-config>`, "<ok/>")
	c.must(`<commit/>`, "last admin")
	c.must(`<discard-changes/>`, "<ok/>")
	// ...but once another admin exists, the first may go.
	if err := setUser(ctx, admin, "root2", "admin", "second-admin-pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.gnmiAs("root2", "second-admin-pw").Set(ctx, &gpb.SetRequest{Delete: []*gpb.Path{sysPath(userElem("admin"))}}); err != nil {
		t.Fatalf("delete admin with another admin left: %v", err)
	}
	a.canLogIn(ctx, "admin", adminPassword, false)
	a.canLogIn(ctx, "root2", "second-admin-pw", true)
}

// TestUsersFileMigrated: a users.json made by the current code (argon2id
// and bcrypt hashes) is moved into the configuration at the first start
// and renamed; a PKI_AGENT_ADMIN_PASSWORD that differs from admin's is
// logged as ignored, without the password.
func TestUsersFileMigrated(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(state, 0o700)
	ah, err := auth.HashPassword("migrated-admin")
	if err != nil {
		t.Fatal(err)
	}
	bh, err := bcrypt.GenerateFromPassword([]byte("bcrypt-viewer"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(state, "users.json")
	if err := auth.Save(file, []auth.User{{Name: "admin", Role: "admin", Hash: ah}, {Name: "vic", Role: "viewer", Hash: string(bh)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startUsersAgent(t, state)
	a.p.logged(t, "migrated the users file")
	if _, err := os.Stat(file); err == nil {
		t.Fatal("users.json is still there")
	}
	if _, err := os.Stat(file + ".migrated"); err != nil {
		t.Fatal(err)
	}
	a.canLogIn(ctx, "admin", "migrated-admin", true)
	a.canLogIn(ctx, "vic", "bcrypt-viewer", true)
	// runAgentBinary sets PKI_AGENT_ADMIN_PASSWORD to another password.
	if err := a.p.stop(); err != nil {
		t.Fatal(err)
	}
	a = startUsersAgent(t, state)
	line := a.p.logged(t, "PKI_AGENT_ADMIN_PASSWORD is ignored")
	if strings.Contains(a.p.log(), adminPassword) {
		t.Fatalf("the password is in the log: %s", line)
	}
	a.canLogIn(ctx, "admin", adminPassword, false)
	a.canLogIn(ctx, "vic", "bcrypt-viewer", true)
	r := dialNETCONFAs(t, a.ncAdr, "admin", "migrated-admin").must(`<get-config><source><running/></source></get-config>`, "<name>vic</name>")
	noSecret(t, "get-config", r)
}
