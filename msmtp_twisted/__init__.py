"""msmtp and msmtpd rebuilt on Twisted.

Importing this package must stay cheap: ``msmtp`` runs once per mail, so nothing
here may pull in Twisted, OpenSSL, ldap3 or keyring.
"""

__version__ = "0.1.0"

#: The msmtp release whose behaviour (command line, messages, exit codes) we follow.
MSMTP_COMPAT_VERSION = "1.8.23"
