"""Twisted protocols driving the sans-IO cores in msmtp_twisted.smtp."""
