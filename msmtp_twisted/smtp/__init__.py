"""The SMTP/LMTP protocol without I/O: replies, capabilities, client sessions."""
