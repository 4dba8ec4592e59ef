"""msmtpd: a minimal SMTP server that hands each mail to a command (msmtp by default)."""
