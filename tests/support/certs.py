"""Test TLS certificates, made by ``trustme``: a throw-away CA and a server certificate it signed, written as PEM
files (a client may trust the CA through ``SSL_CERT_FILE``, as a deployment with a private CA would)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TLSFiles:
    ca: Path  #: the CA's certificate
    cert: Path  #: the server's certificate chain
    key: Path  #: the server's private key

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def make_tls(directory: Path, names: Sequence[str]) -> TLSFiles:
    """A CA, and a server certificate for ``names`` (host names, or IP addresses such as "127.0.0.1"), in
    ``directory``."""
    ca = trustme.CA(organization_name="broker tests")
    leaf = ca.issue_cert(*names)
    files = TLSFiles(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    files.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files.key))
    return files
