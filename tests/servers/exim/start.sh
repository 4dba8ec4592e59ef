#!/usr/bin/env bash
# start.sh DIR [BASE_PORT] -- start Exim 4.96 (Debian's exim4-daemon-light, unpacked)
# on 127.0.0.1 for the integration tests of AUTH EXTERNAL (RFC 4422 appendix A) and of
# PLAIN, LOGIN and CRAM-MD5.  Used by the pytest fixture in __init__.py beside this
# file; stop.sh DIR stops it again.
#
# Installs nothing.  Exim's package conflicts with postfix (both provide
# mail-transport-agent), so ./scripts/test (scripts/_system.sh) unpacks it instead:
#   apt-get install libc6 libcrypt1 libdb5.3 libgnutls-dane0 libgnutls30 libidn12 \
#     libidn2-0 libnsl2 libpcre2-8-0                   # exim4-daemon-light's Depends
#   apt-get download exim4-daemon-light exim4-base
#   for f in exim4-*.deb; do dpkg-deb -x "$f" /opt/exim4-root; done
#   adduser --system --group --no-create-home --home /var/spool/exim4 \
#     --allow-bad-names Debian-exim
# (the Debian binary looks up the user Debian-exim before it reads -C's file and
# exits with 'failed to find uid for user name "Debian-exim"' without it).
# $EXIM_ROOT (default /opt/exim4-root) is where it was unpacked.
#
# Runs as root.  Exim started by root with -C (a configuration not in its
# TRUSTED_CONFIG_LIST) drops root for good and runs as exim_user = nobody: so its
# folders, its TLS key and the Maildir belong to nobody, and DIR (made 0755 here) and
# its parents must be traversable by nobody.  Everything lives under DIR.
#
# Ports (127.0.0.1 only):
#   BASE+0  SMTP, STARTTLS offered
#   BASE+1  SMTPS (implicit TLS)
# On both, Exim asks for a client certificate (tls_try_verify_hosts: optional) and
# offers AUTH PLAIN LOGIN CRAM-MD5 (user testuser, password testpass; authenticators
# named plain, login, cram_md5) and, only when a client certificate signed by
# DIR/certs/ca.crt was verified, AUTH EXTERNAL (authenticator external): it accepts
# an empty authorization identity or one equal to the certificate's CN (testclient),
# and the authenticated id is that CN.  The mainlog's "<=" line shows which one was
# used: A=<authenticator>:<id>, e.g. A=external:testclient, A=plain:testuser.
# Failures answer "535 Incorrect authentication data" (no delay).
#
# Mail: every recipient is accepted and delivered to the Maildir DIR/mail/sink/
# (files owned by nobody), except local parts unknown* / nosuch* (550 at RCPT).
#
# Certificates (EC P-256, 10 years, from now: client and server share the clock):
#   certs/ca.crt                     "exim-test CA": signs the server and client certs
#   certs/server.crt, server-chain.crt  CN localhost, SAN DNS:localhost IP:127.0.0.1
#   certs/client.{crt,key}           CN testclient, clientAuth, signed by ca
#   certs/rogue-client.{crt,key}     CN testclient too, but signed by "rogue CA" that
#                                    Exim does not trust (not verified: no EXTERNAL)
#
# Logs: DIR/exim/log/mainlog (and rejectlog, paniclog).  Pid file: DIR/exim/exim.pid.
# On success the script prints KEY=VALUE lines (ports, paths) on stdout.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 DIR [BASE_PORT]" >&2; exit 2; fi
if [ "$(id -u)" -ne 0 ]; then echo "$0: must run as root" >&2; exit 2; fi
mkdir -p "$1"
DIR=$(cd "$1" && pwd -P)
chmod 0755 "$DIR"
BASE=${2:-21125}
case $BASE in ''|*[!0-9]*) echo "$0: bad BASE_PORT $BASE" >&2; exit 2;; esac
P_SMTP=$BASE
P_SMTPS=$((BASE + 1))

EXIM_ROOT=${EXIM_ROOT:-/opt/exim4-root}
EXIM_BIN="$EXIM_ROOT/usr/sbin/exim4"
[ -x "$EXIM_BIN" ] || { echo "$0: $EXIM_BIN missing (see the header)" >&2; exit 1; }
getent passwd Debian-exim >/dev/null \
  || { echo "$0: user Debian-exim missing (see the header)" >&2; exit 1; }
MAIL_UID=$(id -u nobody)
MAIL_GID=$(getent group nogroup | cut -d: -f3)
runuser -u nobody -- test -x "$DIR" \
  || { echo "$0: user nobody cannot reach $DIR (chmod o+x its parents)" >&2; exit 1; }
X="$DIR/exim"
if [ -e "$X/exim.pid" ]; then
  echo "$0: exim already started in $DIR (run stop.sh first)" >&2; exit 1
fi

mkdir -p "$DIR/certs" "$X/spool" "$X/log" "$DIR/mail"
chown "$MAIL_UID:$MAIL_GID" "$X" "$X/spool" "$X/log" "$DIR/mail"

# ---------------------------------------------------------------- certificates
C="$DIR/certs"
(
  cd "$C"
  gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  make_ca() { # NAME CN
    gen_key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 3650 -subj "/CN=$2" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  }
  make_leaf() { # NAME CN CA EXTENSIONS
    gen_key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial \
      -days 3650 -out "$1.crt" -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
  }
  LEAF="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment"
  make_ca ca "exim-test CA"
  make_leaf server localhost ca "$LEAF
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
  make_leaf client testclient ca "$LEAF
extendedKeyUsage=clientAuth"
  make_ca rogue-ca "rogue CA"
  make_leaf rogue-client testclient rogue-ca "$LEAF
extendedKeyUsage=clientAuth"
  cat server.crt ca.crt > server-chain.crt
  chmod 0644 ./*.crt
  chmod 0600 ./*.key
)
# Exim reads its key after dropping root: a copy owned by nobody
install -o "$MAIL_UID" -g "$MAIL_GID" -m 0600 "$C/server.key" "$X/server.key"

# --------------------------------------------------------------- configuration
cat > "$X/exim.conf" <<EOF
# Generated by $0.  Exim re-executes itself (deliveries, queue runs): exim_path is
# needed because the binary is not at its compiled-in place.
exim_path = $EXIM_BIN
exim_user = nobody
exim_group = nogroup
never_users = root
primary_hostname = exim.example.test
qualify_domain = example.test
spool_directory = $X/spool
log_file_path = $X/log/%slog
pid_file_path = $X/exim.pid
daemon_smtp_ports = $P_SMTP : $P_SMTPS
tls_on_connect_ports = $P_SMTPS
local_interfaces = 127.0.0.1
tls_advertise_hosts = *
tls_certificate = $C/server-chain.crt
tls_privatekey = $X/server.key
# ask every client for a certificate, accept the session without one
tls_verify_certificates = $C/ca.crt
tls_try_verify_hosts = *
auth_advertise_hosts = *
acl_smtp_rcpt = acl_check_rcpt
# no DNS, no ident: loopback only
host_lookup =
rfc1413_hosts =
message_size_limit = 10M
keep_environment =
log_selector = +tls_peerdn +tls_certificate_verified +received_recipients

begin acl
acl_check_rcpt:
  deny    local_parts = ^(unknown|nosuch).*
          message = unknown user
  accept

begin routers
sink:
  driver = accept
  transport = maildir_sink

begin transports
maildir_sink:
  driver = appendfile
  directory = $DIR/mail/sink
  maildir_format
  create_directory
  delivery_date_add
  envelope_to_add
  return_path_add
  user = nobody
  group = nogroup

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and{{eq{\$auth2}{testuser}}{eq{\$auth3}{testpass}}}}
  server_set_id = \$auth2
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = \${if and{{eq{\$auth1}{testuser}}{eq{\$auth2}{testpass}}}}
  server_set_id = \$auth1
cram_md5:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = \${if eq{\$auth1}{testuser}{testpass}fail}
  server_set_id = \$auth1
# RFC 4422 appendix A: offered only after a verified client certificate; the
# authorization identity (\$auth1) must be empty or the certificate's CN (\$auth2)
external:
  driver = external
  public_name = EXTERNAL
  server_advertise_condition = \${if eq{\$tls_in_certificate_verified}{1}}
  server_param2 = \${certextract{subject,CN}{\$tls_in_peercert}}
  server_condition = \${if or{{eq{\$auth1}{}}{eq{\$auth1}{\$auth2}}}}
  server_set_id = \$auth2
EOF

# ------------------------------------------------------------------------ start
# -bd daemonizes (pid file above), -q1m runs the queue every minute (deliveries are
# immediate anyway).  stdin/stdout/stderr never the caller's (a caller capturing
# output would otherwise wait for the daemon).
if ! "$EXIM_BIN" -C "$X/exim.conf" -bd -q1m </dev/null >"$X/startup.err" 2>&1; then
  echo "$0: exim failed to start:" >&2
  cat "$X/startup.err" "$X/log/paniclog" >&2 2>/dev/null || true
  exit 1
fi

wait_tcp() { # port
  local i
  for i in $(seq 1 100); do
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "$0: nothing listening on 127.0.0.1:$1" >&2
  cat "$X/startup.err" "$X/log/paniclog" >&2 2>/dev/null || true
  return 1
}
wait_tcp "$P_SMTP"
wait_tcp "$P_SMTPS"
for _ in $(seq 1 50); do [ -s "$X/exim.pid" ] && break; sleep 0.05; done
[ -s "$X/exim.pid" ] || { echo "$0: no pid file $X/exim.pid" >&2; exit 1; }

cat <<EOF
DIR=$DIR
SMTP_PORT=$P_SMTP
SMTPS_PORT=$P_SMTPS
CA_FILE=$C/ca.crt
CLIENT_CERT=$C/client.crt
CLIENT_KEY=$C/client.key
ROGUE_CLIENT_CERT=$C/rogue-client.crt
ROGUE_CLIENT_KEY=$C/rogue-client.key
CLIENT_CN=testclient
MAILDIR=$DIR/mail/sink
MAINLOG=$X/log/mainlog
PIDFILE=$X/exim.pid
EOF
