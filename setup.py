"""Build script: the metadata lives in pyproject.toml, the package list here.

``twisted.plugins`` is listed by hand: it is a namespace folder holding only our
twistd plugin module.  Neither ``twisted/`` nor ``twisted/plugins/`` may ever get
an ``__init__.py``: installed, it would overwrite Twisted's own.

``data_files`` installs the man pages (generated from the command tables by
``python -m msmtp_twisted.config.reference --write``) under the prefix's
``share/man``, where ``man`` finds them for a venv or ``--prefix`` install.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["msmtp_twisted", "msmtp_twisted.*"]),
        "twisted.plugins",
    ],
    data_files=[
        ("share/man/man1", ["docs/man/msmtp.1"]),
        ("share/man/man8", ["docs/man/msmtpd.8"]),
    ],
)
