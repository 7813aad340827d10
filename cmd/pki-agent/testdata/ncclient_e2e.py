"""Drive a running pki-agent over NETCONF with ncclient, checking results.

Usage: ncclient_e2e.py HOST PORT USER PASSWORD
Prints one line per step and "ALL OK" at the end; exits non-zero on the
first failure.
"""
import sys
import time

from ncclient import manager
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

NS = "urn:pkiagent:yang:pki-authority"
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def connect():
    return manager.connect(host=host, port=port, username=user, password=password,
                           hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=30)


def check(cond, what, detail=""):
    if not cond:
        print("FAIL:", what, detail)
        sys.exit(1)
    print("ok:", what)


def cfg(body):
    return ('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
            '<authority xmlns="%s">%s</authority></config>' % (NS, body))


def router(name):
    return ("<router><name>%s</name><peer-validation>true</peer-validation>"
            "<peer><name>p1</name><identifier>cn-%s</identifier></peer></router>" % (name, name))


m = connect()
caps = list(m.server_capabilities)
for c in (":candidate", ":confirmed-commit:1.1", ":validate:1.1", ":rollback-on-error",
          ":notification", ":interleave", ":with-defaults"):
    check(any(c in x for x in caps), "capability " + c)
check(any(x.startswith(NS + "?module=pki-authority&revision=") for x in caps), "module capability")

# Edit candidate, validate, commit.
m.lock("candidate")
m.edit_config(target="candidate", config=cfg(router("r1") + router("r2")))
m.validate(source="candidate")
m.commit()
m.unlock("candidate")
flt = ('subtree', '<authority xmlns="%s"><router><name>r1</name></router></authority>' % NS)
got = m.get_config(source="running", filter=flt).data_xml
check("cn-r1" in got and "r2" not in got, "get-config with a subtree filter on a list key", got)

got = m.get(filter=('subtree', '<authority xmlns="%s"><router/></authority>' % NS), with_defaults="report-all").data_xml
check("fail-soft" in got, "get with with-defaults report-all shows defaults", got)
got = m.get(filter=('subtree', '<authority xmlns="%s"><router/></authority>' % NS)).data_xml
check("fail-soft" not in got, "get in basic mode explicit hides defaults", got)

# Lock contention between two sessions.
m2 = connect()
m.lock("candidate")
try:
    m2.lock("candidate")
    check(False, "second lock refused")
except RPCError as e:
    check(e.tag == "lock-denied" and str(m.session_id) in str(e.info), "second lock is lock-denied naming the holder", e.info)
try:
    m2.edit_config(target="candidate", config=cfg(router("r3")))
    check(False, "edit of a locked candidate refused")
except RPCError as e:
    check(e.tag == "in-use", "edit of another session's locked candidate is in-use", e.tag)
m.unlock("candidate")

# Confirmed commit that rolls back when not confirmed.
m.edit_config(target="candidate", config=cfg(router("r9")))
m.commit(confirmed=True, timeout="2")
check("r9" in m.get_config(source="running").data_xml, "confirmed commit applied")
time.sleep(3.5)
check("r9" not in m.get_config(source="running").data_xml, "unconfirmed commit rolled back")

# discard-changes.
m.edit_config(target="candidate", config=cfg(router("r7")))
m.discard_changes()
check("r7" not in m.get_config(source="candidate").data_xml, "discard-changes")

# Notifications (interleaved with rpcs on the same session).
m.create_subscription()
m2.edit_config(target="candidate", config=cfg(router("r5")))
m2.commit()
n = m.take_notification(block=True, timeout=10)
while n is not None and "netconf-config-change" not in n.notification_xml:
    n = m.take_notification(block=True, timeout=10)
check(n is not None and "r5" in n.notification_xml, "netconf-config-change after create-subscription",
      n.notification_xml if n else "none")
check("r5" in m.get_config(source="running").data_xml, "rpcs keep working on a subscribed session")

# PKI rpcs.
r = m.dispatch(to_ele('<generate-private-key xmlns="%s"><name>nc-key</name><algorithm>ecc</algorithm></generate-private-key>' % NS))
check("nc-key" in r.xml and "BEGIN" not in r.xml, "generate-private-key", r.xml)
r = m.dispatch(to_ele('<generate-csr xmlns="%s"><name>nc-key</name><common-name>router1.example.net</common-name>'
                      '<subject-alt-name><dns>router1.example.net</dns></subject-alt-name></generate-csr>' % NS))
check("BEGIN CERTIFICATE REQUEST" in r.xml, "generate-csr", r.xml[:300])
try:
    m.dispatch(to_ele('<import-certificate xmlns="%s"><name>nc-key</name><certificate>not a pem</certificate></import-certificate>' % NS))
    check(False, "import of garbage refused")
except RPCError as e:
    check(e.tag in ("invalid-value", "operation-failed"), "import-certificate of garbage refused", e.tag)
r = m.dispatch(to_ele('<refresh-certificate-revocation-list xmlns="%s"/>' % NS))
check(r.ok, "refresh-certificate-revocation-list")
try:
    r = m.dispatch(to_ele('<validate-peer-certificate xmlns="%s"><router>r1</router><peer>p1</peer><certificate>x</certificate></validate-peer-certificate>' % NS))
    check("<result" in r.xml or "result>" in r.xml, "validate-peer-certificate", r.xml)
except RPCError as e:
    check(e.tag in ("invalid-value", "operation-failed"), "validate-peer-certificate of garbage refused", e.tag)

m2.close_session()
m.close_session()
print("ALL OK")
