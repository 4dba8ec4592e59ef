"""``--configure=address``: an account from the domain's SRV records (RFC 8314).

``_submissions._tcp.DOMAIN`` (implicit TLS) is preferred over
``_submission._tcp.DOMAIN`` (STARTTLS).  The look-up is one small blocking
DNS exchange over UDP to the resolvers in ``/etc/resolv.conf`` (or the file
named by ``MSMTP_RESOLV_CONF``); the message encoding is Twisted's.
"""

from __future__ import annotations

import os
import random
import socket
from typing import TYPE_CHECKING

from msmtp_twisted import sysexits

if TYPE_CHECKING:
    from msmtp_twisted.modes.invocation import CommandLine, Output

__all__ = ["hostname_matches_domain", "lookup_srv", "run_configure"]

RESOLV_CONF_ENV = "MSMTP_RESOLV_CONF"
_FAIL = "automatic configuration based on SRV records failed: "


def hostname_matches_domain(hostname: str, domain: str) -> bool:
    h, d = hostname.lower(), domain.lower()
    if not d or len(h) < len(d):
        return False
    if len(h) == len(d):
        return h == d
    return len(h) >= len(d) + 2 and h.endswith("." + d)


def _nameservers(path: str) -> list[tuple[str, int]]:
    servers = []
    from msmtp_twisted.limits import FILE_LIMIT, read_file_at_most

    try:
        data, _ = read_file_at_most(path, FILE_LIMIT)  # a resolv.conf is a few lines
    except OSError:
        data = b""
    for line in data.decode("utf-8", "replace").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            host, _, port = words[1].partition("#")
            servers.append((host, int(port) if port.isdigit() else 53))
    return servers or [("127.0.0.1", 53)]


def lookup_srv(name: str, *, timeout: float = 5.0) -> tuple[str, int] | None:
    """The (target, port) of the best SRV record for ``name``, or None."""
    from twisted.names import dns

    path = os.environ.get(RESOLV_CONF_ENV) or "/etc/resolv.conf"
    query = dns.Message(id=random.randrange(1, 65535), recDes=True)
    query.queries = [dns.Query(name.encode("idna"), dns.SRV, dns.IN)]
    packet = query.toStr()
    for host, port in _nameservers(path):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.sendto(packet, (host, port))
                data, _ = sock.recvfrom(65535)
            except OSError:
                continue
        answer = dns.Message()
        try:
            answer.fromStr(data)
        except Exception:
            continue
        if answer.id != query.id:
            continue
        records = [rr.payload for rr in answer.answers if rr.type == dns.SRV]
        if not records:
            return None
        best = min(records, key=lambda r: (r.priority, -r.weight))
        target = best.target.name.decode("ascii", "replace").rstrip(".")
        if not target:
            return None
        return target, best.port
    return None


def run_configure(conf: CommandLine, out: Output) -> int:
    from msmtp_twisted.config.files import user_config_path

    address = conf.configure or ""
    local, at, domain = address.rpartition("@")
    if not at or not domain or not local:
        out.err(_FAIL + "invalid mail address")
        return sysexits.EX_DATAERR
    q1 = f"_submissions._tcp.{domain}"
    q2 = f"_submission._tcp.{domain}"
    starttls = False
    try:
        found = lookup_srv(q1)
        if found is None:
            starttls = True
            found = lookup_srv(q2)
    except (UnicodeError, ValueError):
        found = None
    if found is None:
        out.err(_FAIL + f"no SRV records for {q1} or {q2}")
        return sysexits.EX_NOHOST
    host, port = found
    conffile = conf.user_conffile or user_config_path()
    out.out(f"# - copy this to your configuration file {conffile}")
    if not hostname_matches_domain(host, domain):
        out.out("# - warning: the host does not match the mail domain; please check")
    out.out("# - add your password to the key ring:")
    out.out(f"#   secret-tool store --label=msmtp host {host} service smtp user {local}")
    out.out(f"account {address}")
    out.out(f"host {host}")
    out.out(f"port {port}")
    out.out("tls on")
    out.out(f"tls_starttls {'on' if starttls else 'off'}")
    out.out("auth on")
    out.out(f"user {local}")
    out.out(f"from {address}")
    return sysexits.EX_OK
