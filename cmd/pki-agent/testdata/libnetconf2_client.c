/*
 * A NETCONF client on libnetconf2 (Debian libnetconf2-dev 2.0.24, libyang
 * 2.1.30), as netopeer2-cli is: it learns the server's modules and features
 * from the hello, the YANG library and get-schema, and builds every rpc
 * against that schema, so a module or feature the server does not
 * advertise makes the rpc fail here, before it is sent.
 *
 * usage: libnetconf2_client HOST PORT USER PASSWORD SCHEMA-DIR
 *
 * It prints one line per step, "ok STEP" or "FAIL STEP: why", every
 * warning or error of libnetconf2 and libyang as "log LEVEL: message", and
 * "ALL OK" at the end when every step passed; it exits 1 at the first
 * failed step. get-schema'd modules are saved in SCHEMA-DIR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include <libyang/libyang.h>
#include <nc_client.h>

static const char *password;

static char *
auth_password(const char *username, const char *hostname, void *priv)
{
    (void)username;
    (void)hostname;
    (void)priv;
    return strdup(password);
}

static int
accept_hostkey(const char *hostname, ssh_session session, void *priv)
{
    /* A fresh host key made by the agent under test. */
    (void)hostname;
    (void)session;
    (void)priv;
    return 0;
}

static void
log_clb(const struct nc_session *session, NC_VERB_LEVEL level, const char *msg)
{
    (void)session;
    if (level <= NC_VERB_WARNING) {
        printf("log %s: %s\n", level == NC_VERB_ERROR ? "error" : "warning", msg);
        fflush(stdout);
    }
}

static void
fail(const char *step, const char *why)
{
    printf("FAIL %s: %s\n", step, why);
    exit(1);
}

/* reply_text prints the reply envelope, for the failure message. */
static char *
reply_text(struct lyd_node *envp)
{
    char *s = NULL;

    if (!envp || lyd_print_mem(&s, envp, LYD_XML, LYD_PRINT_WITHSIBLINGS | LYD_PRINT_SHRINK)) {
        return strdup("(no reply)");
    }
    return s;
}

/*
 * rpc sends r and waits for its reply: an <ok/> when want_ok, else data
 * (returned in *data, the caller frees it). Notifications that arrive
 * first stay queued for nc_recv_notif.
 */
static void
rpc(struct nc_session *s, const char *step, struct nc_rpc *r, int want_ok, struct lyd_node **data)
{
    uint64_t msgid;
    NC_MSG_TYPE m;
    struct lyd_node *envp = NULL, *op = NULL;
    char *txt;

    if (!r) {
        fail(step, "the rpc cannot be built");
    }
    m = nc_send_rpc(s, r, 10000, &msgid);
    if (m != NC_MSG_RPC) {
        fail(step, "the rpc cannot be sent (the client's schema refused it; see the log lines above)");
    }
    do {
        lyd_free_tree(envp);
        lyd_free_tree(op);
        envp = op = NULL;
        m = nc_recv_reply(s, r, msgid, 20000, &envp, &op);
    } while (m == NC_MSG_NOTIF);
    if (m != NC_MSG_REPLY) {
        fail(step, "no reply");
    }
    txt = reply_text(envp);
    if (want_ok) {
        if (!strstr(txt, "<ok/>") && !strstr(txt, ":ok/>")) {
            printf("FAIL %s: reply is not <ok/>: %s\n", step, txt);
            exit(1);
        }
    } else if (!op || strstr(txt, "rpc-error")) {
        printf("FAIL %s: reply has no data: %s\n", step, txt);
        exit(1);
    }
    free(txt);
    lyd_free_tree(envp);
    if (data) {
        *data = op;
    } else {
        lyd_free_tree(op);
    }
    nc_rpc_free(r);
    printf("ok %s\n", step);
    fflush(stdout);
}

static void
need_feature(const struct ly_ctx *ctx, const char *module, const char *feature)
{
    const struct lys_module *mod = ly_ctx_get_module_implemented(ctx, module);
    char buf[200];

    snprintf(buf, sizeof buf, "%s:%s", module, feature);
    if (!mod) {
        fail(buf, "module not implemented in the client's context");
    }
    if (feature && lys_feature_value(mod, feature) != LY_SUCCESS) {
        fail(buf, "feature not enabled in the client's context");
    }
    printf("ok feature %s\n", buf);
}

static const char *
router(const char *name, const char *action)
{
    static char buf[512];

    snprintf(buf, sizeof buf,
            "<authority xmlns=\"urn:pkiagent:yang:pki-authority\"><router><name>%s</name>"
            "<certificate-failure-action>%s</certificate-failure-action></router></authority>", name, action);
    return buf;
}

int
main(int argc, char **argv)
{
    struct nc_session *s;
    const struct ly_ctx *ctx;
    struct lyd_node *envp = NULL, *op = NULL, *data = NULL;
    char *txt;
    NC_MSG_TYPE m;
    int i, got = 0;

    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT USER PASSWORD SCHEMA-DIR\n", argv[0]);
        return 2;
    }
    password = argv[4];
    setvbuf(stdout, NULL, _IOLBF, 0);

    nc_client_init();
    nc_verbosity(NC_VERB_WARNING);
    nc_set_print_clb_session(log_clb);
    nc_client_set_schema_searchpath(argv[5]);
    nc_client_ssh_set_username(argv[3]);
    nc_client_ssh_set_auth_pref(NC_SSH_AUTH_PUBLICKEY, -1);
    nc_client_ssh_set_auth_pref(NC_SSH_AUTH_INTERACTIVE, -1);
    nc_client_ssh_set_auth_pref(NC_SSH_AUTH_PASSWORD, 1);
    nc_client_ssh_set_auth_password_clb(auth_password, NULL);
    nc_client_ssh_set_auth_hostkey_check_clb(accept_hostkey, NULL);

    s = nc_connect_ssh(argv[1], (uint16_t)atoi(argv[2]), NULL);
    if (!s) {
        fail("connect", "no session (see the log lines above)");
    }
    printf("ok connect session-id %" PRIu32 "\n", nc_session_get_id(s));

    /* What netopeer2-cli needs to offer candidate, validate, commit and
     * subscriptions: the modules and features learnt from the server. */
    ctx = nc_session_get_ctx(s);
    need_feature(ctx, "ietf-netconf", "candidate");
    need_feature(ctx, "ietf-netconf", "confirmed-commit");
    need_feature(ctx, "ietf-netconf", "validate");
    need_feature(ctx, "ietf-netconf", "rollback-on-error");
    need_feature(ctx, "ietf-netconf", "writable-running");
    need_feature(ctx, "notifications", NULL);
    need_feature(ctx, "nc-notifications", NULL);
    need_feature(ctx, "ietf-netconf-notifications", NULL);
    need_feature(ctx, "ietf-netconf-monitoring", NULL);
    need_feature(ctx, "ietf-netconf-with-defaults", NULL);
    need_feature(ctx, "pki-authority", NULL);

    rpc(s, "lock candidate", nc_rpc_lock(NC_DATASTORE_CANDIDATE), 1, NULL);
    rpc(s, "edit-config candidate", nc_rpc_edit(NC_DATASTORE_CANDIDATE, NC_RPC_EDIT_DFLTOP_MERGE,
            NC_RPC_EDIT_TESTOPT_TESTSET, NC_RPC_EDIT_ERROPT_ROLLBACK, router("ln2-a", "fail-hard"), NC_PARAMTYPE_CONST), 1, NULL);
    rpc(s, "validate candidate", nc_rpc_validate(NC_DATASTORE_CANDIDATE, NULL, NC_PARAMTYPE_CONST), 1, NULL);
    rpc(s, "commit", nc_rpc_commit(0, 0, NULL, NULL, NC_PARAMTYPE_CONST), 1, NULL);

    rpc(s, "edit-config candidate for the confirmed commit", nc_rpc_edit(NC_DATASTORE_CANDIDATE, NC_RPC_EDIT_DFLTOP_MERGE,
            NC_RPC_EDIT_TESTOPT_UNKNOWN, NC_RPC_EDIT_ERROPT_UNKNOWN, router("ln2-b", "fail-soft"), NC_PARAMTYPE_CONST), 1, NULL);
    rpc(s, "confirmed commit", nc_rpc_commit(1, 120, NULL, NULL, NC_PARAMTYPE_CONST), 1, NULL);
    rpc(s, "confirming commit", nc_rpc_commit(0, 0, NULL, NULL, NC_PARAMTYPE_CONST), 1, NULL);

    rpc(s, "get-config running", nc_rpc_getconfig(NC_DATASTORE_RUNNING,
            "<authority xmlns=\"urn:pkiagent:yang:pki-authority\"><router/></authority>", NC_WD_UNKNOWN, NC_PARAMTYPE_CONST), 0, &data);
    txt = reply_text(data);
    if (!strstr(txt, "ln2-a") || !strstr(txt, "ln2-b")) {
        printf("FAIL running after the confirming commit: %s\n", txt);
        return 1;
    }
    printf("ok running holds both routers\n");
    free(txt);
    lyd_free_all(data);

    /* Replay from the start of the buffer, then live notifications. */
    rpc(s, "create-subscription with replay", nc_rpc_subscribe(NULL, NULL, "2000-01-01T00:00:00Z", NULL, NC_PARAMTYPE_CONST), 1, NULL);
    /* A commit after subscribing: netconf-config-change (RFC 6470). */
    rpc(s, "edit-config candidate after subscribing", nc_rpc_edit(NC_DATASTORE_CANDIDATE, NC_RPC_EDIT_DFLTOP_MERGE,
            NC_RPC_EDIT_TESTOPT_UNKNOWN, NC_RPC_EDIT_ERROPT_UNKNOWN, router("ln2-c", "fail-hard"), NC_PARAMTYPE_CONST), 1, NULL);
    rpc(s, "commit after subscribing", nc_rpc_commit(0, 0, NULL, NULL, NC_PARAMTYPE_CONST), 1, NULL);
    /* replayed ones, replayComplete, then the live netconf-config-change */
    for (i = 0; i < 50 && got < 2; i++) {
        m = nc_recv_notif(s, 10000, &envp, &op);
        if (m == NC_MSG_REPLY) {
            continue;
        }
        if (m != NC_MSG_NOTIF) {
            fail("notification", got ? "no netconf-config-change after replayComplete within 10 s" : "no replayComplete within 10 s");
        }
        if (!op || !op->schema) {
            fail("notification", "received but not parsed against a module of the client's context");
        }
        printf("notification %s:%s\n", op->schema->module->name, op->schema->name);
        if (!got && !strcmp(op->schema->name, "replayComplete")) {
            got = 1;
        } else if (got && !strcmp(op->schema->name, "netconf-config-change")) {
            got = 2;
        }
        lyd_free_tree(envp);
        lyd_free_tree(op);
        envp = op = NULL;
    }
    if (got < 2) {
        fail("notification", "no replayComplete then netconf-config-change among the first 50 notifications");
    }
    printf("ok notifications replayComplete then netconf-config-change\n");

    rpc(s, "unlock candidate", nc_rpc_unlock(NC_DATASTORE_CANDIDATE), 1, NULL);
    nc_session_free(s, NULL);
    nc_client_destroy();
    printf("ALL OK\n");
    return 0;
}
