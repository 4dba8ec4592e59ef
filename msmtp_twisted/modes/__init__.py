"""msmtp's modes of operation: sendmail, pretend, serverinfo, rmqs, configure."""
