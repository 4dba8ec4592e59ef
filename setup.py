"""Build script: the metadata lives in pyproject.toml, the package list here.

``twisted.plugins`` is listed by hand: it is a namespace folder holding only our
twistd plugin module.  Neither ``twisted/`` nor ``twisted/plugins/`` may ever get
an ``__init__.py``: installed, it would overwrite Twisted's own.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["msmtp_twisted", "msmtp_twisted.*"]),
        "twisted.plugins",
    ],
)
