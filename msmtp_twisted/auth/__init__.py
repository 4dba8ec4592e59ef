"""SASL authentication.

``METHODS`` lists the mechanisms this build can use, in the order ``--version``
prints them; it grows as mechanisms are implemented (see the authentication issue).
``KEYRING`` names the key ring backend in use, or None.
"""

from __future__ import annotations

METHODS: tuple[str, ...] = ()
KEYRING: str | None = None
