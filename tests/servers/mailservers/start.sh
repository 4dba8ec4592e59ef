#!/usr/bin/env bash
# start.sh DIR [BASE_PORT] -- start real mail servers on loopback for the integration
# tests: Postfix (SMTP on several ports), Dovecot (SASL for Postfix, LMTP on TCP and a
# unix socket) and, when installed, microsocks (SOCKS5).  Used by the pytest fixture in
# __init__.py beside this file; stop.sh DIR stops everything again.
#
# Installs nothing.  Debian 12 packages (./scripts/test installs them as root):
#   postfix dovecot-core dovecot-lmtpd openssl [microsocks]
# with the debconf answers
#   postfix postfix/main_mailer_type select No configuration
#   postfix postfix/mailname string localhost
# ("No configuration" leaves /etc/postfix/main.cf absent: every postfix command here
# gets "-c DIR/postfix/etc" and needs nothing from /etc.)
#
# Runs as root (the Postfix and Dovecot masters drop privileges themselves), without
# systemd or syslog.  Everything lives under DIR: certificates, configurations, queue,
# logs, Maildirs, sockets and pid files.  DIR and its parents must be traversable by
# the users "postfix" (smtpd reaches Dovecot's auth socket) and "nobody" (deliveries);
# the script makes DIR itself mode 0755.
#
# Ports: a block of 11 consecutive ports on 127.0.0.1 from BASE_PORT (default 20025;
# the reference recipe uses 10024-11081, so both can run side by side):
#   BASE+0   Postfix SMTP: STARTTLS offered, AUTH only after STARTTLS, no auth needed
#            for local domains (also on [::1] when the host has IPv6)
#   BASE+1   Postfix SMTP without TLS; AUTH offered in clear, optional
#   BASE+2   Postfix SMTPS (implicit TLS); AUTH required to send (also on [::1])
#   BASE+3   Postfix submission: STARTTLS required, AUTH required
#   BASE+4   Postfix: STARTTLS required and a client certificate from our CA required
#   BASE+5   Postfix: STARTTLS offered, client certificate asked for but optional;
#            RCPT allowed with a trusted certificate or after AUTH
#   BASE+6   Dovecot LMTP (STARTTLS offered; also on [::1]); the same LMTP service
#            listens on the unix socket DIR/dovecot/lmtp.sock
#   BASE+7   microsocks SOCKS5 without authentication     (only if microsocks is installed)
#   BASE+8   microsocks SOCKS5 with user socksuser / password sockspass      (idem)
#   BASE+9   nothing listens here: the "next hop" for example.net, so that mail stays
#            deferred in the queue (for ETRN tests)
#   BASE+10  Postfix SMTP without TLS and without PIPELINING in its EHLO reply, with
#            reject_unauth_pipelining for DATA.  NB Postfix 3.7 notices pipelining only
#            after commands that must end a group (EHLO, DATA, ...): it logs "improper
#            command pipelining after EHLO" and then rejects DATA with 503 5.5.0; MAIL
#            and RCPT sent ahead of time go unnoticed (count round trips for those)
#
# Postfix EHLO keywords (BASE+0, before STARTTLS): PIPELINING SIZE 10240000 VRFY ETRN
# STARTTLS ENHANCEDSTATUSCODES 8BITMIME DSN SMTPUTF8 CHUNKING.
#
# Users (SASL and LMTP): testuser / testpass, alice / "alice secret".
#
# Postfix accepts any recipient in any domain and delivers to Maildirs (files owned by
# nobody) under DIR/mail/smtp/:
#   {sender,alice,bob,carol,testuser}@example.com  -> example.com/<name>/new/
#   any other address                              -> sink/new/ (one file per recipient;
#                                                     see its X-Original-To: header)
# except:
#   local part unknown* or nosuch*  -> "550 5.1.1 <addr>: Recipient address rejected:
#                                      User unknown in virtual mailbox table" at RCPT
#   domain example.net              -> accepted, then deferred (next hop BASE+9 is dead)
#   domains *.invalid               -> "554 5.7.1 ... Relay access denied" without AUTH,
#                                      "550 5.4.4 ... outbound mail disabled" with AUTH
# Every mail gets Return-Path: (the envelope sender), Delivered-To: and X-Original-To:.
# DSN is on: "--dsn-notify=success" makes Postfix send a delivery report to the sender.
#
# Dovecot LMTP delivers <testuser@any> and <alice@any> to DIR/mail/lmtp/<user>/Maildir/;
#   <full@any>      250 at RCPT, then "552 5.2.2 <full@...> Quota exceeded" after DATA
#   <tempfail@any>  250 at RCPT, then "451 4.2.0 <tempfail@...> Internal error" after DATA
#   anything else   "550 5.1.1 <x@...> User doesn't exist: x@..." at RCPT
#
# Logs: DIR/postfix/postfix.log, DIR/dovecot/dovecot.log.
# On success the script prints KEY=VALUE lines (ports, paths) on stdout; the fixture
# reads them.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 DIR [BASE_PORT]" >&2; exit 2; fi
if [ "$(id -u)" -ne 0 ]; then echo "$0: must run as root" >&2; exit 2; fi
mkdir -p "$1"
DIR=$(cd "$1" && pwd -P)
chmod 0755 "$DIR"
BASE=${2:-20025}
case $BASE in ''|*[!0-9]*) echo "$0: bad BASE_PORT $BASE" >&2; exit 2;; esac

P_SMTP=$BASE
P_NOTLS=$((BASE + 1))
P_SMTPS=$((BASE + 2))
P_SUBM=$((BASE + 3))
P_CCERT=$((BASE + 4))
P_CCERT_OPT=$((BASE + 5))
P_LMTP=$((BASE + 6))
P_SOCKS=$((BASE + 7))
P_SOCKS_AUTH=$((BASE + 8))
P_DEAD=$((BASE + 9))
P_NOPIPE=$((BASE + 10))

MAIL_UID=$(id -u nobody)
MAIL_GID=$(getent group nogroup | cut -d: -f3)

HAVE_V6=no
if [ -r /proc/net/if_inet6 ] && grep -q '^0\{31\}1 ' /proc/net/if_inet6; then HAVE_V6=yes; fi
HAVE_SOCKS=no
if command -v microsocks >/dev/null; then HAVE_SOCKS=yes; fi

for u in postfix dovecot dovenull nobody; do
  getent passwd "$u" >/dev/null || { echo "$0: user $u missing (package not installed?)" >&2; exit 1; }
done
getent group postdrop >/dev/null || { echo "$0: group postdrop missing" >&2; exit 1; }
for u in postfix nobody; do
  runuser -u "$u" -- test -x "$DIR" \
    || { echo "$0: user $u cannot reach $DIR (chmod o+x its parents)" >&2; exit 1; }
done
if [ -e "$DIR/postfix/spool/pid/master.pid" ] || [ -e "$DIR/dovecot/run/master.pid" ]; then
  echo "$0: servers already started in $DIR (run stop.sh first)" >&2; exit 1
fi

mkdir -p "$DIR"/{certs,postfix,dovecot,mail/smtp,mail/lmtp,socks}

# ---------------------------------------------------------------- certificates
# EC P-256, valid 10 years from now (client and server share the clock):
#   ca            "msmtp-test CA", trusted by Postfix for client certificates
#   server        CN localhost, SAN DNS:localhost IP:127.0.0.1 IP:::1 (server-chain.crt
#                 = server + CA, used by Postfix and Dovecot)
#   client        CN testclient, signed by ca (clientAuth)
#   rogue-client  CN rogueclient, signed by rogue-ca which nobody trusts
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
  make_ca ca "msmtp-test CA"
  make_leaf server localhost ca "$LEAF
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
  make_leaf client testclient ca "$LEAF
extendedKeyUsage=clientAuth"
  make_ca rogue-ca "rogue CA"
  make_leaf rogue-client rogueclient rogue-ca "$LEAF
extendedKeyUsage=clientAuth"
  cat server.crt ca.crt > server-chain.crt
  chmod 0644 ./*.crt
  chmod 0600 ./*.key
)

# --------------------------------------------------------------------- dovecot
# A standalone configuration (nothing from /etc/dovecot): the auth service for
# Postfix's SASL and the LMTP service.  Passwords are stored in clear ({PLAIN}) so that
# CRAM-MD5, DIGEST-MD5 and SCRAM can be computed.  username_format=%n: the local part
# is the user name, so LMTP "RCPT TO:<testuser@any.domain>" and SASL "testuser" agree.
D="$DIR/dovecot"
mkdir -p "$D/run" "$D/state"
L="$DIR/mail/lmtp"
cat > "$D/users" <<EOF
testuser:{PLAIN}testpass:$MAIL_UID:$MAIL_GID::$L/testuser::
alice:{PLAIN}alice secret:$MAIL_UID:$MAIL_GID::$L/alice::
full:{PLAIN}fullpass:$MAIL_UID:$MAIL_GID::$L/full::userdb_quota_rule=*:storage=1B
tempfail:{PLAIN}tempfailpass:$MAIL_UID:$MAIL_GID::$L/readonly/tempfail::
EOF
chown root:dovecot "$D/users"
chmod 0640 "$D/users"
mkdir -p "$L/testuser" "$L/alice" "$L/full" "$L/readonly"
chown -R "$MAIL_UID:$MAIL_GID" "$L"
# "tempfail": its home cannot be created under a read-only folder, so Dovecot answers
# 451 for it after DATA.  ("full" has a quota of 1 byte -- "1" without a unit would
# be 1 KiB -- and lmtp_rcpt_check_quota = no defers the check from RCPT to DATA.)
chown root:root "$L/readonly"
chmod 0555 "$L/readonly"

LMTP_LISTEN="127.0.0.1"
[ $HAVE_V6 = yes ] && LMTP_LISTEN="127.0.0.1 ::1"
cat > "$D/dovecot.conf" <<EOF
instance_name = msmtp-test-dovecot-$BASE
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
info_log_path = $D/dovecot.log
debug_log_path = $D/dovecot.log
protocols = lmtp
listen = $LMTP_LISTEN
default_login_user = dovenull
default_internal_user = dovecot
# mail is written as nobody (65534), which must be a "valid" uid
first_valid_uid = 100
last_valid_uid = 0

ssl = yes
ssl_cert = <$C/server-chain.crt
ssl_key = <$C/server.key
ssl_min_protocol = TLSv1.2

# else PLAIN/LOGIN fail on Postfix's port without TLS (BASE+1)
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256
auth_verbose = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $D/users
}
userdb {
  driver = passwd-file
  args = username_format=%n $D/users
}
mail_location = maildir:~/Maildir

service auth {
  # Postfix's smtpd (user postfix, not chrooted) connects here
  unix_listener $D/auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
service lmtp {
  inet_listener lmtp {
    port = $P_LMTP
  }
  unix_listener $D/lmtp.sock {
    mode = 0666
  }
}
lmtp_rcpt_check_quota = no
protocol lmtp {
  mail_plugins = quota
}
plugin {
  quota = maildir:User quota
}
EOF

# --------------------------------------------------------------------- postfix
# Queue and data directories must not be inside the config directory: postfix-script
# wants everything under config_directory owned by root.
PF="$DIR/postfix/etc" PFQ="$DIR/postfix/spool" PFD="$DIR/postfix/data"
mkdir -p "$PF" "$PFQ" "$PFD"
chown root:root "$PFQ"
chmod 0755 "$PFQ"
chown postfix:postfix "$PFD"
chown "$MAIL_UID:$MAIL_GID" "$DIR/mail/smtp"
INET_PROTOCOLS=ipv4
[ $HAVE_V6 = yes ] && INET_PROTOCOLS="ipv4, ipv6"

cat > "$PF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PFQ
data_directory = $PFD
mail_owner = postfix
setgid_group = postdrop
# Postfix logs to syslog only, unless maillog_file is set (needs the postlog service
# in master.cf, and a prefix list that allows the file: the default allows /var only)
maillog_file_prefixes = $DIR/postfix
maillog_file = $DIR/postfix/postfix.log
myhostname = mail.example.test
mydomain = example.test
myorigin = \$myhostname
mydestination =
# the default (the local networks) would let anything from 127.0.0.1 relay
mynetworks =
inet_interfaces = loopback-only
inet_protocols = $INET_PROTOCOLS
smtputf8_enable = yes
# no reverse DNS for clients: tests connect from several 127.x.y.z addresses, and a
# CI resolver that drops PTR queries would stall every session
smtpd_peername_lookup = no
biff = no
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:5.1.1 local delivery disabled
default_transport = error:5.4.4 outbound mail disabled in test server
message_size_limit = 10240000

# Virtual mailboxes for every domain except *.invalid and example.net
virtual_mailbox_domains = regexp:$PF/vdomains
virtual_mailbox_maps = texthash:$PF/vmailbox-named, regexp:$PF/vmailbox
virtual_mailbox_base = $DIR/mail/smtp
virtual_uid_maps = static:$MAIL_UID
virtual_gid_maps = static:$MAIL_GID
virtual_minimum_uid = 100

# ETRN: example.net is a relay domain whose next hop is dead, so its mail waits in
# the queue; "ETRN example.net" flushes it (fast_flush_domains needs the flush service)
relay_domains = example.net
fast_flush_domains = \$relay_domains
transport_maps = texthash:$PF/transport
smtpd_etrn_restrictions = permit

smtpd_relay_restrictions = permit_sasl_authenticated, permit_tls_all_clientcerts, reject_unauth_destination
smtpd_recipient_restrictions =

# SASL through Dovecot's auth socket (switched on per port in master.cf).  No chroot
# anywhere, so the absolute socket path works.
smtpd_sasl_type = dovecot
smtpd_sasl_path = $D/auth-postfix
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtpd_tls_auth_only = yes

smtpd_tls_chain_files = $C/server.key, $C/server-chain.crt
smtpd_tls_CAfile = $C/ca.crt
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_tls_session_cache_database =
smtp_tls_security_level = none
EOF

# NB regexp tables: a found value is a match whatever it says (DUNNO, REJECT...), so
# exclusions need if/endif; a line starting with "#" is a comment.
cat > "$PF/vdomains" <<'EOF'
if !/(\.invalid$|^example\.net$)/
/./	OK
endif
EOF
# virtual(8) refuses $1 substitutions from regexp tables, so every named mailbox needs
# its own entry; all other recipients share the "sink" Maildir.
: > "$PF/vmailbox-named"
for u in sender alice bob carol testuser; do
  printf '%s@example.com\texample.com/%s/\n' "$u" "$u" >> "$PF/vmailbox-named"
done
cat > "$PF/vmailbox" <<'EOF'
if !/^(unknown|nosuch)/
/@/	sink/
endif
EOF
printf 'example.net\tsmtp:[127.0.0.1]:%s\n' "$P_DEAD" > "$PF/transport"

# master.cf: chroot off (column 5 = n) everywhere
SASL="-o smtpd_sasl_auth_enable=yes"
AUTH_REQUIRED="-o smtpd_recipient_restrictions=permit_sasl_authenticated,reject"
{
  echo "# service type private unpriv chroot wakeup maxproc command + args"
  echo "127.0.0.1:$P_SMTP inet n - n - - smtpd $SASL"
  [ $HAVE_V6 = yes ] && echo "[::1]:$P_SMTP inet n - n - - smtpd $SASL"
  echo "127.0.0.1:$P_NOTLS inet n - n - - smtpd $SASL -o smtpd_tls_security_level=none -o smtpd_tls_auth_only=no"
  echo "127.0.0.1:$P_SMTPS inet n - n - - smtpd $SASL -o smtpd_tls_wrappermode=yes $AUTH_REQUIRED"
  # a client (microsocks) that takes the first address of "localhost", ::1 on a stock
  # Debian /etc/hosts, must find the implicit-TLS port there too
  [ $HAVE_V6 = yes ] && echo "[::1]:$P_SMTPS inet n - n - - smtpd $SASL -o smtpd_tls_wrappermode=yes $AUTH_REQUIRED"
  echo "127.0.0.1:$P_SUBM inet n - n - - smtpd $SASL -o smtpd_tls_security_level=encrypt $AUTH_REQUIRED"
  echo "127.0.0.1:$P_CCERT inet n - n - - smtpd -o smtpd_tls_security_level=encrypt -o smtpd_tls_ask_ccert=yes -o smtpd_tls_req_ccert=yes -o smtpd_recipient_restrictions=permit_tls_all_clientcerts,reject"
  echo "127.0.0.1:$P_CCERT_OPT inet n - n - - smtpd $SASL -o smtpd_tls_ask_ccert=yes -o smtpd_recipient_restrictions=permit_tls_all_clientcerts,permit_sasl_authenticated,reject"
  echo "127.0.0.1:$P_NOPIPE inet n - n - - smtpd -o smtpd_tls_security_level=none -o smtpd_discard_ehlo_keywords=pipelining -o smtpd_data_restrictions=reject_unauth_pipelining"
  cat <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
} > "$PF/master.cf"
# Postfix waits until a configuration file is a few seconds old before it trusts it
# (it might still be being written): "postfix start" sat ~2 s in 300 ms sleeps on the
# new main.cf.  Backdating the files makes the start take ~0.2 s.
touch -d "@$(( $(date +%s) - 60 ))" "$PF"/*

# ------------------------------------------------------------------- start all
wait_tcp() { # HOST PORT: at most 100 x 0.1 s
  local i
  for i in $(seq 1 100); do
    if timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$0: nothing listening on $1:$2" >&2
  return 1
}
wait_unix() { # PATH: at most 100 x 0.1 s
  local i
  for i in $(seq 1 100); do
    [ -S "$1" ] && return 0
    sleep 0.1
  done
  echo "$0: no unix socket $1" >&2
  return 1
}

# Every daemon gets stdin/stdout/stderr redirected: Dovecot keeps the caller's stderr
# open after it daemonizes, and a caller that reads our output would wait forever.
if ! dovecot -c "$D/dovecot.conf" </dev/null >"$D/startup.err" 2>&1; then
  echo "$0: dovecot failed to start:" >&2
  cat "$D/startup.err" "$D/dovecot.log" >&2 2>/dev/null || true
  exit 1
fi
wait_unix "$D/auth-postfix"

# Postfix commands report errors to syslog (absent here) unless stderr is a tty; with
# maillog_file set they land in postfix.log too.
if ! postfix -c "$PF" start </dev/null >/dev/null 2>&1; then
  echo "$0: postfix start failed:" >&2
  tail -20 "$DIR/postfix/postfix.log" >&2 2>/dev/null || true
  exit 1
fi

if [ $HAVE_SOCKS = yes ]; then
  microsocks -i 127.0.0.1 -p "$P_SOCKS" </dev/null >"$DIR/socks/microsocks.log" 2>&1 &
  echo $! > "$DIR/socks/microsocks.pid"
  microsocks -i 127.0.0.1 -p "$P_SOCKS_AUTH" -u socksuser -P sockspass \
    </dev/null >"$DIR/socks/microsocks-auth.log" 2>&1 &
  echo $! > "$DIR/socks/microsocks-auth.pid"
fi

# Readiness (the probes show up as "lost connection after CONNECT" in postfix.log)
for p in $P_SMTP $P_NOTLS $P_SMTPS $P_SUBM $P_CCERT $P_CCERT_OPT $P_NOPIPE $P_LMTP; do
  wait_tcp 127.0.0.1 "$p"
done
if [ $HAVE_V6 = yes ]; then wait_tcp ::1 "$P_SMTP"; wait_tcp ::1 "$P_SMTPS"; wait_tcp ::1 "$P_LMTP"; fi
if [ $HAVE_SOCKS = yes ]; then wait_tcp 127.0.0.1 "$P_SOCKS"; wait_tcp 127.0.0.1 "$P_SOCKS_AUTH"; fi
wait_unix "$D/lmtp.sock"

cat <<EOF
DIR=$DIR
SMTP_PORT=$P_SMTP
SMTP_NOTLS_PORT=$P_NOTLS
SMTPS_PORT=$P_SMTPS
SUBMISSION_PORT=$P_SUBM
CCERT_REQUIRED_PORT=$P_CCERT
CCERT_OPTIONAL_PORT=$P_CCERT_OPT
NOPIPELINING_PORT=$P_NOPIPE
LMTP_PORT=$P_LMTP
LMTP_SOCKET=$D/lmtp.sock
SOCKS=$HAVE_SOCKS
SOCKS_PORT=$P_SOCKS
SOCKS_AUTH_PORT=$P_SOCKS_AUTH
DEAD_PORT=$P_DEAD
IPV6=$HAVE_V6
CA_FILE=$C/ca.crt
CLIENT_CERT=$C/client.crt
CLIENT_KEY=$C/client.key
ROGUE_CLIENT_CERT=$C/rogue-client.crt
ROGUE_CLIENT_KEY=$C/rogue-client.key
SMTP_MAILDIR_BASE=$DIR/mail/smtp
LMTP_MAILDIR_BASE=$DIR/mail/lmtp
POSTFIX_LOG=$DIR/postfix/postfix.log
DOVECOT_LOG=$D/dovecot.log
EOF
