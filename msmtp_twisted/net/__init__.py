"""Connections: endpoints for accounts (TCP, unix sockets; SOCKS and TLS later)."""
