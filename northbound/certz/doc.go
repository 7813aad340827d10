// Package certz serves gNSI certz (github.com/openconfig/gnsi/certz) on the
// gNMI port: it rotates the agent's managed certificates, trust bundles and
// CRL bundles through the PKI engine and the datastore, with the same checks
// as the NETCONF rpcs.
//
// Profiles: each SSL profile maps to a managed certificate of the same name,
// except the gNMI server's own profile gNxI, which maps to --tls-cert-name.
// A profile's trust bundle is the configuration entry
// /authority/trusted-ca-certificate[name=PROFILE] (validation-mode strict),
// committed through the datastore like any gNMI Set; its CRL bundle is
// installed through CRLInstaller.
//
// Rotate: GenerateCSRRequest generates a key on the box (file storage, or the
// storage of the name's existing key) and returns its CSR; UploadRequest
// installs, in this order, a trust bundle, a CRL bundle and a certificate
// chain, each live at once so the client can test it; FinalizeRequest keeps
// them. An error, a closed stream or a broken connection before finalize
// rolls everything back: the previous key, certificate, trust bundle and CRL
// bundle are restored and the TLS certificate in force is the previous one.
// Private keys are refused wherever they appear (import check 1) and never
// repeated. One Rotate runs at a time (others get Unavailable).
//
// Roles: Rotate, AddProfile and DeleteProfile need admin or operator; a
// trust bundle upload changes the configuration and needs admin; reads need
// any role. Errors: InvalidArgument names the field, FailedPrecondition when
// a key is missing or the datastore is locked, NotFound for unknown
// profiles, AlreadyExists for a version in force without force_overwrite,
// Unimplemented for what this agent does not offer (authentication
// policies, existing_entity, cert_source and key_source other than
// generated, PKCS#7 trust bundles, attested CSRs, GetIntegrityManifest).
//
// Limits: a chain of at most 9 certificates, trust bundles of at most 64,
// CRL bundles of at most 64 CRLs; messages are bounded by the gNMI server's
// 16 MiB.
package certz
