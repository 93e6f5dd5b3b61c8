"""TLS to MySQL and Aurora: the server's certificate and host name verified against the RDS CA bundle shipped in
the package, the system store, or a CA file of the user's. A leaf of its own: the sources (``mysql://…?ssl=true``)
and the clone module's worker, which opens the temporary and the staging clusters, both use it, and the worker
must not import the exporter's Arrow reader to get it.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from importlib import resources

from pipeline.errors import SourceError

RDS_CA_BUNDLE = "rds-global-bundle.pem"  # AWS's global bundle: the root CAs of every region's RDS certificates


@lru_cache(maxsize=8)
def tls_context(ca_file: str | None, *, verify: bool = True) -> ssl.SSLContext:
    """The TLS settings of a connection: certificate and host name verified against ``ca_file``, or against the
    RDS bundle and the system store; neither with ``verify=False`` (``ssl=insecure``)."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file:
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            raise SourceError(
                f"cannot read the CA bundle ssl_ca={ca_file}: {getattr(error, 'strerror', None) or error}",
                hint="give the path of a PEM file of CA certificates (Aurora: AWS's global-bundle.pem)",
            ) from None
        # As pymysql does: a CA of one's own (MySQL's auto-generated one) may lack what Python 3.13's strict
        # X.509 checking asks for. The shipped bundle and the system store keep the strict checks.
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        return context
    context = ssl.create_default_context()  # the system store
    context.load_verify_locations(cadata=resources.files(__package__).joinpath(RDS_CA_BUNDLE).read_text("ascii"))
    return context


def certificate_refused(error_text: str) -> bool:
    """Whether a connection error is TLS refusing the server's certificate (its signer, or its name: Python's
    ``ssl`` says ``CERTIFICATE_VERIFY_FAILED`` for both, ``… mismatch`` for the name): nothing was sent to it."""
    return "CERTIFICATE_VERIFY_FAILED" in error_text
