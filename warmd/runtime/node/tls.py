"""The mutual-TLS contexts peers use, built from `[cluster.tls]`."""

from __future__ import annotations

import ssl

from warmd.config import Config


def tls_contexts(config: Config) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """Server and client contexts for mutual TLS between peers, or (None, None).

    Raises:
        OSError, ssl.SSLError: a certificate or key file cannot be read or does not match.
    """
    tls = config.cluster.tls
    if tls is None:
        return None, None
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca_file))
    server.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
    client.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    client.check_hostname = False  # peers are dialed by address; the CA vouches for them
    return server, client
