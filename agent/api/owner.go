package api

import "fmt"

// Owner is who holds a lock or makes a commit: one client session. It is
// comparable (== and map keys), and the servers read the fields they need
// from it (NETCONF its session id) instead of parsing its words back.
type Owner struct {
	// Protocol names the protocol of the session: "netconf", "gnmi",
	// "gnsi certz". Empty for the agent itself or an owner known only by
	// name (a confirmed commit left pending before a restart).
	Protocol string
	// Session is the NETCONF session id (RFC 6241 session-id), 0 for the
	// other protocols.
	Session uint32
	// Name tells the session of another protocol apart, e.g.
	// "alice@127.0.0.1:5000 set 4".
	Name string
}

// NetconfOwner is the owner of NETCONF session id.
func NetconfOwner(id uint32) Owner { return Owner{Protocol: "netconf", Session: id} }

// String is the owner in operator words: "netconf session 4",
// "gnmi alice@127.0.0.1:5000 set 4"; "" for the zero Owner (the agent).
func (o Owner) String() string {
	switch {
	case o.Protocol == "netconf":
		return fmt.Sprintf("netconf session %d", o.Session)
	case o.Protocol == "" || o.Name == "":
		return o.Protocol + o.Name
	}
	return o.Protocol + " " + o.Name
}
