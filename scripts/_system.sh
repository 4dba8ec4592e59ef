# Sourced by scripts/test: the Debian packages and files the test suite needs, and
# install_system, which installs whatever of them is missing (as root, with apt-get).
#
# install_system is idempotent and quick when everything is there already: it asks
# dpkg which packages are missing and calls apt-get (update, install) only for those,
# so a developer who re-runs ./scripts/test waits for nothing.
#
# Without root (or without apt-get) nothing is installed: the tests that need a missing
# package skip with a loud reason (and fail under CI=true, see tests/conftest.py).

# Debian packages the test suite needs. Add new ones here (postfix, ...), and their
# debconf answers to DEBCONF_SELECTIONS so that nothing asks a question.
SYSTEM_PACKAGES=(
    python3 python3-venv  # the virtual environment the tests run in
    ca-certificates adduser tzdata
    msmtp           # the reference implementation the tests compare against
    gcc libc6-dev   # builds a tiny C getopt_long harness to compare our parser with glibc
    # real mail servers on loopback for the integration tests (tests/servers/mailservers/)
    postfix dovecot-core dovecot-lmtpd
    openssl         # their certificates
    microsocks      # SOCKS5 proxy
    # swaks, a second reference client; its perl modules for TLS, AUTH (DIGEST-MD5 needs
    # both libauthen-sasl-perl and libdigest-hmac-perl) and IPv6
    swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl
    libdigest-hmac-perl libio-socket-inet6-perl
    slapd           # LDAP server for msmtpd's --auth-ldap tests (the tests start their own)
    man-db groff-base  # man -w / man -l: the installed man pages are found and render
    # a real Secret Service for the key ring tests: GNOME Keyring on a private D-Bus
    # session bus the tests start, and secret-tool to store passwords as msmtp users do
    dbus gnome-keyring libsecret-tools
    # AUTH GSSAPI and NTLM (tests/servers/kerberos.py): an MIT KDC, Postfix with Cyrus
    # SASL (NTLM, GSSAPI), Dovecot's submission server with GSSAPI; and what building
    # the gssapi Python package (the [gssapi] extra, no wheel) needs
    krb5-kdc krb5-admin-server krb5-user sasl2-bin libsasl2-modules
    libsasl2-modules-gssapi-mit dovecot-gssapi dovecot-submissiond libkrb5-dev python3-dev
    # the libraries exim4-daemon-light links with (Exim itself is unpacked, see below)
    libc6 libcrypt1 libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2
    libpcre2-8-0
)
DEBCONF_SELECTIONS=(
    'msmtp msmtp/apparmor boolean false'
    # "No configuration": no /etc/postfix/main.cf; the tests bring their own
    'postfix postfix/main_mailer_type select No configuration'
    'postfix postfix/mailname string localhost'
    'slapd slapd/no_configuration boolean true'
)
# Debian's msmtpd (the reference for our msmtpd) is in msmtp-mta, which conflicts with
# postfix: it is unpacked here instead of installed (tests/integration/test_msmtpd_differential.py).
MSMTPD_ROOT=/opt/msmtpd-root
# Exim 4.96 for the AUTH EXTERNAL tests (tests/servers/exim/): its package conflicts with
# postfix too (both provide mail-transport-agent), so it is unpacked as well.
EXIM_ROOT=/opt/exim4-root

# missing_packages: print the names of the SYSTEM_PACKAGES that are not installed.
missing_packages() {
    command -v dpkg-query >/dev/null || { printf '%s\n' "${SYSTEM_PACKAGES[@]}"; return; }
    local installed
    installed=$(dpkg-query -W -f='${binary:Package} ${db:Status-Abbrev}\n' \
        "${SYSTEM_PACKAGES[@]}" 2>/dev/null | awk '$2 == "ii" { sub(/:.*/, "", $1); print $1 }')
    local p
    for p in "${SYSTEM_PACKAGES[@]}"; do
        grep -qxF "$p" <<<"$installed" || echo "$p"
    done
}

# missing_files: print what of the unpacked references and the Exim user is missing.
missing_files() {
    [ -x "$MSMTPD_ROOT/usr/bin/msmtpd" ] || echo "$MSMTPD_ROOT/usr/bin/msmtpd (msmtp-mta)"
    [ -x "$EXIM_ROOT/usr/sbin/exim4" ] || echo "$EXIM_ROOT/usr/sbin/exim4 (exim4-daemon-light)"
    getent passwd Debian-exim >/dev/null || echo "the system user Debian-exim"
}

# _unpack DIR PACKAGE...: apt-get download the packages and unpack them into DIR.
_unpack() {
    local dir=$1 tmp
    shift
    tmp=$(mktemp -d)
    chown _apt "$tmp" 2>/dev/null || true  # apt downloads as _apt; else it warns "unsandboxed"
    local status=0
    (cd "$tmp" && apt-get download "$@" && mkdir -p "$dir" \
        && for f in *.deb; do dpkg-deb -x "$f" "$dir" || exit 1; done) || status=1
    rm -rf "$tmp"
    return $status
}

# install_system: as root, install whatever is missing; otherwise say what is missing.
# Returns non-zero when an installation step failed (each step is checked here: the
# caller may run this where `set -e` does not apply).
install_system() {
    local missing files
    missing=$(missing_packages)
    files=$(missing_files)
    if [ -z "$missing" ] && [ -z "$files" ]; then
        echo "== system packages: all installed"
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "== system packages: missing, not installed (./scripts/test installs them when"
        echo "   run as root on Debian 12); the tests that need them skip, listed at the end:"
        # shellcheck disable=SC2086
        echo $missing $files | fold -s -w 74 | sed 's/^/     /'
        return 0
    fi
    # shellcheck disable=SC2086
    echo "== system packages: installing" $missing $files
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || return 1
    if [ -n "$missing" ]; then
        printf '%s\n' "${DEBCONF_SELECTIONS[@]}" | debconf-set-selections || return 1
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing || return 1
    fi
    if [ ! -x "$MSMTPD_ROOT/usr/bin/msmtpd" ]; then
        _unpack "$MSMTPD_ROOT" msmtp-mta || return 1
    fi
    if [ ! -x "$EXIM_ROOT/usr/sbin/exim4" ]; then
        _unpack "$EXIM_ROOT" exim4-daemon-light exim4-base || return 1
    fi
    if ldd "$EXIM_ROOT/usr/sbin/exim4" | grep 'not found'; then
        echo "$0: exim4: libraries missing" >&2
        return 1
    fi
    # The Debian binary looks this user up before it reads the tests' own -C configuration.
    if ! getent passwd Debian-exim >/dev/null; then
        adduser --system --group --quiet --no-create-home --home /var/spool/exim4 \
            --allow-bad-names Debian-exim || return 1
    fi
}
