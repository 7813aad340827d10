#!/usr/bin/env bash
# Installs the Debian packages the tests drive (yanglint, swtpm, yangcli,
# python3-ncclient, the OpenSSL headers the TPM simulator builds against,
# libnetconf2 and libyang with gcc for the C NETCONF client of
# cmd/pki-agent, rsyslog with its TLS driver as the syslog receiver) when
# any is missing. Safe to run repeatedly.
set -euo pipefail

missing=()
command -v yanglint >/dev/null || missing+=(libyang2-tools)
command -v swtpm >/dev/null || missing+=(swtpm swtpm-tools)
command -v yangcli >/dev/null || missing+=(yangcli)
command -v script >/dev/null || missing+=(bsdutils)
command -v openssl >/dev/null || missing+=(openssl)
/usr/bin/python3 -c 'import ncclient' 2>/dev/null || missing+=(python3-ncclient)
[ -f /usr/include/openssl/evp.h ] || missing+=(libssl-dev)
command -v gcc >/dev/null || missing+=(gcc)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -f /usr/include/nc_client.h ] || missing+=(libnetconf2-dev)
[ -f /usr/include/libyang/libyang.h ] || missing+=(libyang2-dev)
[ -f /usr/include/libssh/libssh.h ] || missing+=(libssh-dev)
command -v rsyslogd >/dev/null || missing+=(rsyslog)
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || missing+=(rsyslog-gnutls)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}"
