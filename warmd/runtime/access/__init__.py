"""The access wing: who a token is (tokens.py) and the audit recorder (audit.py); the
daemon wires both into the admin server, and the web middleware reads the token authority."""
