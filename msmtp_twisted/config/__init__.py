"""msmtprc: the command table, the parser, the files, and account choice."""
