// Package yanglinttest checks data trees (NETCONF XML, gNMI JSON_IETF)
// against the agent's pinned YANG modules with libyang's yanglint, so tests
// see list shapes, module prefixes and types as an outside client does.
package yanglinttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	yangmod "github.com/pkiagent/pkiagent/yang"
)

// Type is a yanglint data tree type (-t).
type Type string

const (
	// Data is a complete datastore with state (a gNMI Get of type ALL, a
	// NETCONF get).
	Data Type = "data"
	// Config is a configuration datastore without state (a gNMI Get of type
	// CONFIG, a NETCONF get-config).
	Config Type = "config"
)

// The types of NETCONF data: what a reply's <data> holds, and a
// notification. They are checked against every module the NETCONF server
// serves (ValidateNETCONF).
const (
	// Get is the <data> of a <get> reply.
	Get Type = "get"
	// GetConfig is the <data> of a <get-config> reply.
	GetConfig Type = "getconfig"
	// Notification is a whole RFC 5277 <notification>.
	Notification Type = "nc-notif"
)

// Format is how the data is written: "json" (RFC 7951) or "xml".
type Format string

const (
	JSON Format = "json"
	XML  Format = "xml"
)

// Validate runs yanglint over data with every module of package yang's
// data model (yang.Modules) and returns what it reports (an error naming
// yanglint's complaint), nil when the data is valid. It needs the yanglint
// binary (Debian libyang2-tools, installed by scripts/install-deps.sh).
func Validate(f Format, t Type, data []byte) error {
	return validate(yangmod.Modules, false, f, t, data, nil)
}

// ValidateNETCONF is Validate of NETCONF XML (t is Get, GetConfig or
// Notification) against every module the NETCONF server serves
// (yang.Served), with the features it advertises. operational, when not
// nil, is the data of a <get> that the instance-identifiers of a
// notification refer to (yanglint -O).
func ValidateNETCONF(t Type, data, operational []byte) error {
	return validate(yangmod.Served(), true, XML, t, data, operational)
}

func validate(mods []yangmod.Module, features bool, f Format, t Type, data, operational []byte) error {
	bin, err := exec.LookPath("yanglint")
	if err != nil {
		return fmt.Errorf("yanglint is not installed (apt-get install -y libyang2-tools): %w", err)
	}
	dir, err := os.MkdirTemp("", "yanglinttest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	args := []string{"-D", "-p", dir, "-t", string(t)} // the input format from the file name; -f would print the data
	if operational != nil {
		op := filepath.Join(dir, "operational.xml")
		if err := os.WriteFile(op, operational, 0o600); err != nil {
			return err
		}
		args = append(args, "-O", op)
	}
	for _, m := range mods {
		src, err := yangmod.Source(m.Name, "")
		if err != nil {
			return err
		}
		file := filepath.Join(dir, m.Name+"@"+m.Revision+".yang")
		if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
			return err
		}
		if features && len(m.Features) > 0 {
			args = append(args, "-F", m.Name+":"+strings.Join(m.Features, ","))
		}
		args = append(args, file)
	}
	in := filepath.Join(dir, "data."+string(f))
	if err := os.WriteFile(in, data, 0o600); err != nil {
		return err
	}
	out, err := exec.Command(bin, append(args, in)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("yanglint -t %s refuses the %s data: %v\n%s", t, f, err, out)
	}
	return nil
}

// Check fails the test when yanglint refuses data, showing the data.
func Check(tb interface {
	Helper()
	Fatalf(string, ...any)
}, f Format, t Type, data []byte) {
	tb.Helper()
	if err := Validate(f, t, data); err != nil {
		tb.Fatalf("%v\ndata:\n%s", err, data)
	}
}

// CheckNETCONF fails the test when ValidateNETCONF refuses data, showing
// the data.
func CheckNETCONF(tb interface {
	Helper()
	Fatalf(string, ...any)
}, t Type, data, operational []byte) {
	tb.Helper()
	if err := ValidateNETCONF(t, data, operational); err != nil {
		tb.Fatalf("%v\ndata:\n%.4000s", err, data)
	}
}
