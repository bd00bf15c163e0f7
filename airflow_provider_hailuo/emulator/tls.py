"""
HTTPS with a certificate no system trusts, like a corporate proxy or a private deployment.

A client that talks to such a host must be given the CA bundle explicitly (and must not lose that
setting, or apply it where it does not belong, e.g. to a storage host). ``trustme`` (a dev extra)
makes a throw-away CA and a server certificate for the emulator's hosts; the CA's PEM is written to
a file whose path clients are given (``EmulatorServer.ca_path``, or ``--ca-file`` on the CLI).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

#: Names every certificate covers, whatever address the emulator is bound to.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TLSMaterial:
    """A server ``SSLContext`` and the path of the CA bundle that verifies it."""

    context: ssl.SSLContext
    ca_path: str


def make_tls(hosts: list[str], ca_path: Path) -> TLSMaterial:
    """A fresh CA (PEM written to ``ca_path``) and a certificate for ``hosts`` plus loopback."""
    try:
        import trustme
    except ImportError as err:  # pragma: no cover - a dev extra
        raise RuntimeError("TLS needs the `trustme` package (pip install trustme)") from err
    names = list(dict.fromkeys([*LOOPBACK_NAMES, *filter(None, hosts)]))
    ca = trustme.CA()
    cert = ca.issue_cert(*names)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(ca_path))
    return TLSMaterial(context=context, ca_path=str(ca_path))
