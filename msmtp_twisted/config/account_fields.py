"""The typed settings of an account: one attribute per msmtprc setting.

GENERATED from the command table (:data:`~msmtp_twisted.config.commands.SETTINGS`
and :data:`~msmtp_twisted.config.commands.COMMANDS`) by
``python -m msmtp_twisted.config.fieldgen > msmtp_twisted/config/account_fields.py``:
do not edit by hand.  tests/unit/test_account_fields.py fails when this module
and the table differ.

:class:`AccountFields` declares the attributes of
:class:`~msmtp_twisted.config.account.Account` (the values are set by its
``__init__``, from the table's defaults); ``AccountSettings`` types its keyword
arguments, for type checkers only (``if TYPE_CHECKING:``): building a TypedDict
at run time would cost msmtp's start-up a millisecond for nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

__all__ = ["AccountFields"]

if TYPE_CHECKING:
    from typing import TypedDict

    class AccountSettings(TypedDict, total=False):
        """The keyword arguments of ``Account(...)``: any of the settings."""

        #: SMTP server host name or address (msmtprc: host; default None)
        host: str | None
        #: server port (0: 25, or 465 for TLS without STARTTLS) (msmtprc: port; default 0)
        port: int
        #: local address to bind to (msmtprc: source_ip; default None)
        source_ip: str | None
        #: SOCKS5 proxy host (msmtprc: proxy_host; default None)
        proxy_host: str | None
        #: SOCKS5 proxy port (0: 1080) (msmtprc: proxy_port; default 0)
        proxy_port: int
        #: unix domain socket to connect to (msmtprc: socket; default None)
        socket: str | None
        #: network timeout in seconds (0: off) (msmtprc: timeout; default 0)
        timeout: float
        #: smtp or lmtp (msmtprc: protocol; default 'smtp')
        protocol: Literal["smtp", "lmtp"]
        #: EHLO/LHLO argument and Message-ID domain (msmtprc: domain; default 'localhost')
        domain: str
        #: None: no auth; '': choose; else the method (msmtprc: auth; default None)
        auth_mech: (
            Literal["", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1",
            "PLAIN", "GSSAPI", "EXTERNAL", "OAUTHBEARER", "CRAM-MD5", "DIGEST-MD5", "LOGIN",
            "NTLM", "XOAUTH2"] | None
        )
        #: user name for authentication (msmtprc: user; default None)
        username: str | None
        #: password (never printed) (msmtprc: password; default None)
        password: str | None
        #: command printing the password (msmtprc: passwordeval; default None)
        passwordeval: str | None
        #: NTLM domain (obsolete) (msmtprc: ntlmdomain; default None)
        ntlmdomain: str | None
        #: use TLS (msmtprc: tls; default False)
        tls: bool
        #: STARTTLS, or TLS from the start (msmtprc: tls_starttls; default True)
        tls_starttls: bool
        #: CA file, 'system', or None (msmtprc: tls_trust_file; default None)
        tls_trust_file: str | None
        #: CRL file (msmtprc: tls_crl_file; default None)
        tls_crl_file: str | None
        #: pinned certificate (msmtprc: tls_fingerprint; default None)
        tls_fingerprint: bytes | None
        #: client key (msmtprc: tls_key_file; default None)
        tls_key_file: str | None
        #: client certificate (msmtprc: tls_cert_file; default None)
        tls_cert_file: str | None
        #: verify the server certificate (msmtprc: tls_certcheck; default True)
        tls_certcheck: bool
        #: deprecated (msmtprc: tls_min_dh_prime_bits; default -1)
        tls_min_dh_prime_bits: int
        #: TLS priority string (msmtprc: tls_priorities; default None)
        tls_priorities: str | None
        #: host name for verification (msmtprc: tls_host_override; default None)
        tls_host_override: str | None
        #: obsolete automatic envelope-from (msmtprc: auto_from; default False)
        auto_from: bool
        #: obsolete auto_from domain (msmtprc: maildomain; default None)
        maildomain: str | None
        #: envelope-from address (or pattern) (msmtprc: from; default None)
        from_addr: str | None
        #: full name for a generated From header (msmtprc: from_full_name; default None)
        from_full_name: str | None
        #: let -f override 'from' (msmtprc: allow_from_override; default True)
        allow_from_override: bool
        #: auto, on or off (msmtprc: set_from_header; default 'auto')
        set_from_header: Literal["auto", "on", "off"]
        #: auto or off (msmtprc: set_date_header; default 'auto')
        set_date_header: Literal["auto", "off"]
        #: auto or off (msmtprc: set_msgid_header; default 'auto')
        set_msgid_header: Literal["auto", "off"]
        #: remove Bcc headers (msmtprc: remove_bcc_headers; default True)
        remove_bcc_headers: bool
        #: off, on or undisclosed_recipients (msmtprc: set_to_header; default 'off')
        set_to_header: Literal["on", "off", "undisclosed_recipients"]
        #: DSN NOTIFY value (msmtprc: dsn_notify; default None)
        dsn_notify: str | None
        #: DSN RET value (msmtprc: dsn_return; default None)
        dsn_return: Literal["HDRS", "FULL"] | None
        #: log file, '-' for stdout (msmtprc: logfile; default None)
        logfile: str | None
        #: strftime format, 'none' for no time (msmtprc: logfile_time_format; default None)
        logfile_time_format: str | None
        #: syslog facility (msmtprc: syslog; default None)
        syslog: (
            Literal["LOG_USER", "LOG_MAIL", "LOG_LOCAL0", "LOG_LOCAL1", "LOG_LOCAL2", "LOG_LOCAL3",
            "LOG_LOCAL4", "LOG_LOCAL5", "LOG_LOCAL6", "LOG_LOCAL7"] | None
        )
        #: aliases file (msmtprc: aliases; default None)
        aliases: str | None


class AccountFields:
    """The settings of an account, as attributes (msmtp's defaults unless set)."""

    #: SMTP server host name or address (msmtprc: host; default None)
    host: str | None
    #: server port (0: 25, or 465 for TLS without STARTTLS) (msmtprc: port; default 0)
    port: int
    #: local address to bind to (msmtprc: source_ip; default None)
    source_ip: str | None
    #: SOCKS5 proxy host (msmtprc: proxy_host; default None)
    proxy_host: str | None
    #: SOCKS5 proxy port (0: 1080) (msmtprc: proxy_port; default 0)
    proxy_port: int
    #: unix domain socket to connect to (msmtprc: socket; default None)
    socket: str | None
    #: network timeout in seconds (0: off) (msmtprc: timeout; default 0)
    timeout: float
    #: smtp or lmtp (msmtprc: protocol; default 'smtp')
    protocol: Literal["smtp", "lmtp"]
    #: EHLO/LHLO argument and Message-ID domain (msmtprc: domain; default 'localhost')
    domain: str
    #: None: no auth; '': choose; else the method (msmtprc: auth; default None)
    auth_mech: (
        Literal["", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1",
        "PLAIN", "GSSAPI", "EXTERNAL", "OAUTHBEARER", "CRAM-MD5", "DIGEST-MD5", "LOGIN", "NTLM",
        "XOAUTH2"] | None
    )
    #: user name for authentication (msmtprc: user; default None)
    username: str | None
    #: password (never printed) (msmtprc: password; default None)
    password: str | None
    #: command printing the password (msmtprc: passwordeval; default None)
    passwordeval: str | None
    #: NTLM domain (obsolete) (msmtprc: ntlmdomain; default None)
    ntlmdomain: str | None
    #: use TLS (msmtprc: tls; default False)
    tls: bool
    #: STARTTLS, or TLS from the start (msmtprc: tls_starttls; default True)
    tls_starttls: bool
    #: CA file, 'system', or None (msmtprc: tls_trust_file; default None)
    tls_trust_file: str | None
    #: CRL file (msmtprc: tls_crl_file; default None)
    tls_crl_file: str | None
    #: pinned certificate (msmtprc: tls_fingerprint; default None)
    tls_fingerprint: bytes | None
    #: client key (msmtprc: tls_key_file; default None)
    tls_key_file: str | None
    #: client certificate (msmtprc: tls_cert_file; default None)
    tls_cert_file: str | None
    #: verify the server certificate (msmtprc: tls_certcheck; default True)
    tls_certcheck: bool
    #: deprecated (msmtprc: tls_min_dh_prime_bits; default -1)
    tls_min_dh_prime_bits: int
    #: TLS priority string (msmtprc: tls_priorities; default None)
    tls_priorities: str | None
    #: host name for verification (msmtprc: tls_host_override; default None)
    tls_host_override: str | None
    #: obsolete automatic envelope-from (msmtprc: auto_from; default False)
    auto_from: bool
    #: obsolete auto_from domain (msmtprc: maildomain; default None)
    maildomain: str | None
    #: envelope-from address (or pattern) (msmtprc: from; default None)
    from_addr: str | None
    #: full name for a generated From header (msmtprc: from_full_name; default None)
    from_full_name: str | None
    #: let -f override 'from' (msmtprc: allow_from_override; default True)
    allow_from_override: bool
    #: auto, on or off (msmtprc: set_from_header; default 'auto')
    set_from_header: Literal["auto", "on", "off"]
    #: auto or off (msmtprc: set_date_header; default 'auto')
    set_date_header: Literal["auto", "off"]
    #: auto or off (msmtprc: set_msgid_header; default 'auto')
    set_msgid_header: Literal["auto", "off"]
    #: remove Bcc headers (msmtprc: remove_bcc_headers; default True)
    remove_bcc_headers: bool
    #: off, on or undisclosed_recipients (msmtprc: set_to_header; default 'off')
    set_to_header: Literal["on", "off", "undisclosed_recipients"]
    #: DSN NOTIFY value (msmtprc: dsn_notify; default None)
    dsn_notify: str | None
    #: DSN RET value (msmtprc: dsn_return; default None)
    dsn_return: Literal["HDRS", "FULL"] | None
    #: log file, '-' for stdout (msmtprc: logfile; default None)
    logfile: str | None
    #: strftime format, 'none' for no time (msmtprc: logfile_time_format; default None)
    logfile_time_format: str | None
    #: syslog facility (msmtprc: syslog; default None)
    syslog: (
        Literal["LOG_USER", "LOG_MAIL", "LOG_LOCAL0", "LOG_LOCAL1", "LOG_LOCAL2", "LOG_LOCAL3",
        "LOG_LOCAL4", "LOG_LOCAL5", "LOG_LOCAL6", "LOG_LOCAL7"] | None
    )
    #: aliases file (msmtprc: aliases; default None)
    aliases: str | None
