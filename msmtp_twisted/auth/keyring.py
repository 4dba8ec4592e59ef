"""The system key ring as a password source: msmtp's "password method 1".

When an account has ``auth`` but neither ``password`` nor ``passwordeval``, msmtp asks
the key ring before it prompts.  :func:`keyring_lookup` does so, in this order, and
stops at the first hit:

1. the freedesktop Secret Service (GNOME Keyring, KeePassXC, KWallet's secrets
   service, ...) over the D-Bus session bus: an item with the attributes of msmtp's
   libsecret schema ``de.marlam.msmtp.password``, ``host``, ``service``, ``user``
   (what ``secret-tool store --label=msmtp host HOST service smtp user USER``, as
   msmtp's manual advises, creates).  Like msmtp, which uses
   ``SECRET_SCHEMA_DONT_MATCH_NAME``, the search leaves ``xdg:schema`` out;
2. the same service, the attributes of the old libgnome-keyring network password
   schema msmtp also queries: ``user``, ``protocol`` (the service), ``server``.  msmtp
   looks them up with libsecret's ``SECRET_SCHEMA_COMPAT_NETWORK``, whose name *is*
   matched: it finds only items that also have ``xdg:schema`` =
   ``org.gnome.keyring.NetworkPassword`` (those libgnome-keyring made).  We leave
   ``xdg:schema`` out here too, so we also find such items made otherwise (e.g.
   ``secret-tool store --label=x user USER protocol smtp server HOST``): a superset;
3. passwords stored with the Python ``keyring`` package (``keyring set SERVICE USER``),
   for the service names ``HOST`` and then ``SERVICE://HOST``
   (e.g. ``smtp://mail.example.com``):

   a. keyring's Secret Service backend stores them with the attributes ``service`` and
      ``username``: they are searched over D-Bus like 1. and 2. (not through keyring,
      which would ask to unlock a locked collection and has no time limits);
   b. then keyring's configured backend, if it is some other usable one (e.g. one of
      keyrings.alt), called in a worker thread.  Its fail and null backends, the
      Secret Service and libsecret ones (covered by 3a) and the ones known to prompt
      (KWallet, keyrings.alt's ``EncryptedKeyring``) are skipped.

Nothing here ever raises, prompts or prints the password: a locked item is unlocked
only when the service can do that without a prompt (otherwise the prompt it offers is
dismissed and the item skipped), and every D-Bus call is bounded so that the whole look-up
takes at most about ``timeout`` seconds even when the bus or the service never
answers.  :func:`keyring_lookup_verbose` also tells why nothing was found; the same notes
go to this module's :mod:`logging` logger at debug level.

``secretstorage``, ``jeepney`` and ``keyring`` are imported only inside the look-up:
start-up time matters (``msmtp --pretend``, ``--version``).
"""

from __future__ import annotations

import functools
import logging
import os
import stat
import threading
import time
from typing import Any

__all__ = [
    "KEYRING_EXTRA_HINT",
    "MSMTP_SCHEMA",
    "compat_attributes",
    "keyring_backend",
    "keyring_installed",
    "keyring_lookup",
    "keyring_lookup_verbose",
    "keyring_service_names",
    "msmtp_attributes",
    "session_bus_socket",
]

#: The name of msmtp's libsecret schema (not matched: ``SECRET_SCHEMA_DONT_MATCH_NAME``).
MSMTP_SCHEMA = "de.marlam.msmtp.password"

_log = logging.getLogger(__name__)

#: what a plain install lacks for the key ring, and how to add it
KEYRING_EXTRA_HINT = "pip install 'msmtp-twisted[keyring]'"

#: keyring backends step 3b never calls, and why (by module, or module.class)
_SKIPPED_BACKENDS = {
    "keyring.backends.fail": "no usable backend",
    "keyring.backends.null": "the null backend",
    "keyring.backends.SecretService": "searched over D-Bus already",
    "keyring.backends.libsecret": "searched over D-Bus already",
    "keyring.backends.kwallet": "may prompt to open the wallet",
    "keyrings.alt.file.EncryptedKeyring": "prompts for its password",
}


# ---------------------------------------------------------------------- attributes
def msmtp_attributes(host: str, user: str, service: str = "smtp") -> dict[str, str]:
    """The search attributes of msmtp's libsecret schema (without ``xdg:schema``)."""
    return {"host": host, "service": service, "user": user}


def compat_attributes(host: str, user: str, service: str = "smtp") -> dict[str, str]:
    """The search attributes of libgnome-keyring's network password schema."""
    return {"user": user, "protocol": service, "server": host}


def keyring_service_names(host: str, service: str = "smtp") -> tuple[str, str]:
    """The Python ``keyring`` service names tried, in order: ``HOST``, ``SERVICE://HOST``."""
    return (host, f"{service}://{host}")


# ------------------------------------------------------------------ the session bus
def _unescape(value: str) -> str:
    """D-Bus address value unescaping (``%xx`` bytes)."""
    from urllib.parse import unquote

    return unquote(value, errors="surrogateescape")


def session_bus_socket(environ: dict[str, str] | None = None) -> str | None:
    """The socket of the D-Bus session bus: a path, or ``"\\0name"`` for an abstract
    socket; None when there is none.

    From the first ``unix:path=`` or ``unix:abstract=`` address in
    ``$DBUS_SESSION_BUS_ADDRESS``; when that variable is unset or empty,
    ``$XDG_RUNTIME_DIR/bus`` if it is a socket (the systemd user bus, as libdbus does).
    The socket is not connected to, and a path given in the variable need not exist.
    """
    env = os.environ if environ is None else environ
    address = env.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        for entry in address.split(";"):
            transport, colon, info = entry.partition(":")
            if not colon or transport != "unix":
                continue
            keys = dict(kv.partition("=")[::2] for kv in info.split(",") if "=" in kv)
            if keys.get("path"):
                return _unescape(keys["path"])
            if keys.get("abstract"):
                return "\0" + _unescape(keys["abstract"])
        return None
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime:
        candidate = os.path.join(runtime, "bus")
        try:
            if stat.S_ISSOCK(os.stat(candidate).st_mode):
                return candidate
        except OSError:
            pass
    return None


def _module_available(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def keyring_installed() -> bool:
    """Whether the ``[keyring]`` extra is installed: ``secretstorage`` (the Secret
    Service) or ``keyring`` (Python's key ring) can be imported.  Cheap: nothing is
    imported."""
    return _module_available("secretstorage") or _module_available("keyring")


def keyring_backend() -> str | None:
    """What ``msmtp --version`` reports as key ring support, cheaply (no D-Bus traffic,
    no import of ``secretstorage`` or ``keyring``).

    ``"Secret Service"`` when there is a session bus socket and ``secretstorage`` can be
    imported; else ``"Python keyring"`` when ``$PYTHON_KEYRING_BACKEND`` names a backend
    the look-up would use; else None.
    """
    try:
        sock = session_bus_socket()
        if sock is not None and (sock.startswith("\0") or os.path.exists(sock)) \
                and _module_available("secretstorage"):
            return "Secret Service"
        configured = os.environ.get("PYTHON_KEYRING_BACKEND", "")
        if configured and _skip_reason(configured) is None and _module_available("keyring"):
            return "Python keyring"
    except Exception:  # pragma: no cover - never let --version fail on this
        pass
    return None


# ---------------------------------------------------------------------- the look-up
def keyring_lookup(host: str, user: str, service: str = "smtp", *,
                   timeout: float = 5.0) -> str | None:
    """The password stored for (host, service, user) in the system key ring, or None.

    See the module documentation for the order of the look-ups.  Never raises, never
    prompts, and returns after about ``timeout`` seconds at most.
    """
    return keyring_lookup_verbose(host, user, service, timeout=timeout)[0]


def keyring_lookup_verbose(host: str, user: str, service: str = "smtp", *,
                           timeout: float = 5.0) -> tuple[str | None, list[str]]:
    """:func:`keyring_lookup`, plus notes (never the password) on where the password was
    found or why not, for debug output."""
    notes: list[str] = []
    deadline = time.monotonic() + max(0.0, timeout)
    password: str | None = None
    if not keyring_installed():
        notes.append(f"no key ring support installed ({KEYRING_EXTRA_HINT})")
        _log.debug("key ring (%s, %s, %s): %s", host, service, user, notes[0])
        return None, notes
    try:
        queries = [
            ("msmtp", msmtp_attributes(host, user, service)),
            ("libgnome-keyring", compat_attributes(host, user, service)),
        ] + [(f"Python keyring, service {name!r}", {"service": name, "username": user})
             for name in keyring_service_names(host, service)]
        password = _secret_service_lookup(queries, deadline, notes)
        if password is None:
            password = _python_keyring_lookup(keyring_service_names(host, service), user,
                                              deadline, notes)
    except Exception as e:  # pragma: no cover - belt and braces
        notes.append(f"key ring look-up failed: {_describe(e)}")
        password = None
    for note in notes:
        _log.debug("key ring (%s, %s, %s): %s", host, service, user, note)
    return password, notes


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@functools.cache
def _bounded_connection_class() -> type:
    """A jeepney blocking connection whose every method call ends by a deadline."""
    from jeepney.io.blocking import DBusConnection

    class BoundedConnection(DBusConnection):  # type: ignore[misc]
        def __init__(self, sock: Any, deadline: float) -> None:
            self.deadline = deadline
            super().__init__(sock)  # says Hello: bounded too

        def send_and_get_reply(self, message: Any, *, timeout: float | None = None,
                               **kwargs: Any) -> Any:
            remaining = self.deadline - time.monotonic()
            if timeout is not None:
                remaining = min(remaining, timeout)
            if remaining <= 0:
                raise TimeoutError("no time left for a D-Bus call")
            return super().send_and_get_reply(message, timeout=remaining, **kwargs)

    return BoundedConnection


def _secret_service_lookup(queries: list[tuple[str, dict[str, str]]], deadline: float,
                           notes: list[str]) -> str | None:
    """Steps 1, 2 and 3a: search the Secret Service for each attribute set in turn."""
    sock_path = session_bus_socket()
    if sock_path is None:
        notes.append("Secret Service: no D-Bus session bus"
                     " (DBUS_SESSION_BUS_ADDRESS unset, no $XDG_RUNTIME_DIR/bus)")
        return None
    try:
        from jeepney.io.blocking import prep_socket
        from secretstorage.defines import SS_PATH
        from secretstorage.exceptions import (
            ItemNotFoundException,
            SecretServiceNotAvailableException,
        )
        from secretstorage.item import Item
        from secretstorage.util import SERVICE_IFACE, DBusAddressWrapper, open_session
    except ImportError as e:
        notes.append(f"Secret Service: cannot use it: {_describe(e)}")
        return None

    remaining = deadline - time.monotonic()
    if remaining <= 0:
        notes.append("Secret Service: no time left")
        return None
    conn = None
    try:
        sock = prep_socket(sock_path, False, timeout=remaining)
        try:
            conn = _bounded_connection_class()(sock, deadline)
        except BaseException:
            sock.close()
            raise
        service = DBusAddressWrapper(SS_PATH, SERVICE_IFACE, conn)
        session = None
        for label, attributes in queries:
            unlocked, locked = service.call("SearchItems", "a{ss}", attributes)
            if not unlocked and not locked:
                notes.append(f"Secret Service: no {label} item")
                continue
            for item_path in list(unlocked) + list(locked):
                if item_path in locked and not _unlock_without_prompt(
                        conn, service, item_path, f"{label} item {item_path}", notes):
                    continue
                try:
                    if session is None:
                        session = open_session(conn)
                    secret = Item(conn, item_path, session).get_secret()
                except (ItemNotFoundException, UnicodeError) as e:
                    notes.append(f"Secret Service: {label} item {item_path}: {_describe(e)}")
                    continue
                except (SecretServiceNotAvailableException, OSError):
                    raise  # the service or the connection is gone: give up
                except Exception as e:  # e.g. locked again meanwhile
                    notes.append(f"Secret Service: {label} item {item_path}: {_describe(e)}")
                    continue
                notes.append(f"Secret Service: found the {label} item {item_path}")
                return secret.decode("utf-8", "surrogateescape")
    except SecretServiceNotAvailableException as e:
        notes.append(f"Secret Service: not available on the session bus: {e}")
    except TimeoutError as e:
        notes.append(f"Secret Service: no answer in time ({_describe(e)})")
    except Exception as e:
        notes.append(f"Secret Service: {_describe(e)}")
    finally:
        if conn is not None:
            try:
                conn.close()
            except Exception:  # pragma: no cover
                pass
    return None


def _unlock_without_prompt(conn: Any, service: Any, item_path: str, what: str,
                           notes: list[str]) -> bool:
    """Unlock a locked item if the service does it without a prompt; otherwise dismiss
    the prompt it offers and return False."""
    from secretstorage.util import PROMPT_IFACE, DBusAddressWrapper

    unlocked, prompt = service.call("Unlock", "ao", [item_path])
    if item_path in unlocked:
        return True
    if prompt and prompt != "/":
        try:
            DBusAddressWrapper(prompt, PROMPT_IFACE, conn).call("Dismiss", "")
        except TimeoutError:
            raise
        except Exception:  # the prompt may be gone already
            pass
        notes.append(f"Secret Service: the {what} is locked and unlocking it"
                     " needs a prompt: skipped")
    else:
        notes.append(f"Secret Service: the {what} is locked and stays locked: skipped")
    return False


# -------------------------------------------------------------- Python keyring (3b)
def _skip_reason(name: str) -> str | None:
    """Why step 3b skips the backend ``name`` (``module.Class``), or None."""
    for prefix, reason in _SKIPPED_BACKENDS.items():
        if name == prefix or name.startswith(prefix + "."):
            return reason
    return None


def _backend_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _keyring_backends(notes: list[str]) -> list[Any]:
    """keyring's configured backend(s), without the ones step 3b skips."""
    import keyring
    from keyring.backends.chainer import ChainerBackend

    configured = keyring.get_keyring()
    if isinstance(configured, ChainerBackend):
        candidates = list(configured.backends)
    else:
        candidates = [configured]
    usable = []
    for backend in candidates:
        reason = _skip_reason(_backend_name(backend))
        if reason is None:
            usable.append(backend)
        else:
            notes.append(f"Python keyring: skipping {_backend_name(backend)}: {reason}")
    return usable


def _python_keyring_lookup(names: tuple[str, ...], user: str, deadline: float,
                           notes: list[str]) -> str | None:
    """Step 3b, in a daemon thread so that a backend that hangs cannot hold us."""
    result: list[str] = []
    thread_notes: list[str] = []

    def work() -> None:
        try:
            backends = _keyring_backends(thread_notes)
            for name in names:
                for backend in backends:
                    password = backend.get_password(name, user)
                    if password is not None:
                        thread_notes.append(f"Python keyring: found service {name!r}"
                                            f" in {_backend_name(backend)}")
                        result.append(password)
                        return
            if backends:
                thread_notes.append("Python keyring: no entry")
        except Exception as e:
            thread_notes.append(f"Python keyring: {_describe(e)}")

    remaining = deadline - time.monotonic()
    if remaining <= 0:
        notes.append("Python keyring: no time left")
        return None
    worker = threading.Thread(target=work, name="keyring-lookup", daemon=True)
    worker.start()
    worker.join(remaining)
    if worker.is_alive():
        notes.append("Python keyring: no answer in time")
        return None
    notes.extend(thread_notes)
    return result[0] if result else None
