"""Connections: endpoints for accounts (TCP, unix sockets, TLS, SOCKS5)."""
