"""TLS to the source: ``ssl=true`` verifies the server's certificate and its host name; ``ssl=insecure`` is the
explicit opt-out. Tested against a real MariaDB with TLS on, started here on a free loopback port (the shared
server on 3306 has TLS off), with a certificate made here for the name ``localhost`` only.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pipeline.core.render import Rendered
from pipeline.errors import SourceError
from pipeline.sources.mysql import RDS_CA_BUNDLE, MySqlSource, connection_arguments, parse_mysql_url, tls_context
from tests.loopback import free_port

pytestmark = pytest.mark.mysql


@dataclass(frozen=True)
class TlsServer:
    port: int
    ca: Path  # the CA that signed the server's certificate (issued for "localhost", not for 127.0.0.1)


def _certificates(folder: Path) -> None:
    """A CA and a server certificate it signs, for the DNS name localhost only."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kpi-pipeline test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    if not (shutil.which("mariadb-install-db") and Path("/usr/sbin/mariadbd").exists()):
        pytest.fail("the TLS tests start their own MariaDB: install mariadb-server (Debian)", pytrace=False)
    folder = Path(tempfile.mkdtemp(prefix="kpi-tls-"))
    _certificates(folder)
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={folder / 'data'}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={folder / 'data'}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={folder / 'mysqld.sock'}", f"--pid-file={folder / 'mysqld.pid'}",
         "--user=root", "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=16M",
         f"--ssl-cert={folder / 'server.pem'}", f"--ssl-key={folder / 'server.key'}", f"--ssl-ca={folder / 'ca.pem'}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:  # ready once it answers a plain connection
            try:
                pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=1).close()
                break
            except pymysql.err.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((folder / "server.log").read_text(errors="replace")[-2000:], pytrace=False)
                time.sleep(0.05)
        yield TlsServer(port, folder / "ca.pem")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def cipher(url: str) -> str:
    """Connect as the exporter would and return the session's TLS cipher ('' when not encrypted)."""
    settings = parse_mysql_url(url)
    with pymysql.connect(**connection_arguments(settings, connect_timeout=5)) as connection, connection.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    return str(row[1]) if row else ""


def refusal(url: str) -> SourceError:
    source = MySqlSource(url)
    with pytest.raises(SourceError) as refused, source.stream(Rendered("SELECT 1", {}, "mysql"), **STREAM):
        pass
    return refused.value


STREAM: dict[str, Any] = {"timeout": dt.timedelta(seconds=30), "zone": ZoneInfo("Asia/Tokyo"), "where": "k"}


def test_ssl_true_refuses_a_certificate_no_trusted_ca_signed(tls_server: TlsServer) -> None:
    """Neither the RDS bundle nor the system store holds the test CA: no connection, so no password sent."""
    error = refusal(f"mysql://root@localhost:{tls_server.port}/mysql?ssl=true")
    assert "CERTIFICATE_VERIFY_FAILED" in error.message
    assert error.hint == (
        "the server's certificate is not signed by a CA of the RDS bundle or the system store: give ssl_ca=PATH of "
        "the CA that signed it; ssl=insecure skips the check (dev only)"
    )


def test_ssl_true_with_the_ca_verifies_the_host_name_too(tls_server: TlsServer) -> None:
    assert re.match(
        r"TLS_|ECDHE", cipher(f"mysql://root@localhost:{tls_server.port}/mysql?ssl=true&ssl_ca={tls_server.ca}")
    )
    error = refusal(f"mysql://root@127.0.0.1:{tls_server.port}/mysql?ssl=true&ssl_ca={tls_server.ca}")
    assert "IP address mismatch" in error.message  # the certificate names localhost, not 127.0.0.1
    assert error.hint.startswith("TLS checks the server's name: connect by the name its certificate was issued for")


def test_ssl_insecure_encrypts_without_verifying_and_says_so(
    tls_server: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert cipher(f"mysql://root@127.0.0.1:{tls_server.port}/mysql?ssl=insecure")
    with MySqlSource(f"mysql://root@127.0.0.1:{tls_server.port}/mysql?ssl=insecure").stream(
        Rendered("SELECT 1", {}, "mysql"), **STREAM
    ) as result:
        assert sum(len(batch[0]) for batch in result.batches) == 1
    assert "TLS without verification (ssl=insecure): for a dev server only" in caplog.text


def test_iam_forces_verified_tls_and_the_options_are_checked() -> None:
    context = connection_arguments(parse_mysql_url("mysql://kpi@db.example:3306/shop?iam=true"), connect_timeout=5)
    assert context["ssl"].check_hostname is True
    assert context["ssl"].verify_mode.name == "CERT_REQUIRED"
    for wrong in ("ssl=yes", "ssl=insecure&ssl_ca=/etc/ca.pem"):
        with pytest.raises(SourceError, match="ssl= must be true"):
            parse_mysql_url(f"mysql://kpi@db:3306/shop?{wrong}")
    with pytest.raises(SourceError, match=r"cannot read the CA bundle ssl_ca=/nonexistent/ca\.pem"):
        tls_context("/nonexistent/ca.pem")


def test_the_shipped_rds_bundle_holds_the_regions_root_cas() -> None:
    """AWS's global bundle as shipped in the package: the verified default for Aurora and RDS."""
    text = resources.files("pipeline.sources").joinpath(RDS_CA_BUNDLE).read_text("ascii")
    certificates = x509.load_pem_x509_certificates(text.encode())
    assert len(certificates) == 96
    names = {c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for c in certificates}
    assert {"Amazon RDS ap-northeast-1 Root CA RSA2048 G1", "Amazon RDS ap-northeast-1 Root CA ECC384 G1"} <= names
    assert all(c.subject == c.issuer for c in certificates)  # roots only
    subjects: list[Any] = [entry["subject"] for entry in tls_context(None).get_ca_certs()]
    trusted = {value for subject in subjects for relative in subject for key, value in relative if key == "commonName"}
    assert names <= trusted  # what ssl=true trusts without ssl_ca


def test_the_clone_worker_verifies_the_clusters_certificate(tls_server: TlsServer) -> None:
    """The clone's worker sends the temporary cluster's master password, and the staging logins' new ones, over
    its connection: a server whose certificate no CA of the RDS bundle (or the system store) signed gets no login.
    Before, it connected with the certificate unchecked — shown here by the same server accepting a connection
    that does not verify."""
    from pipeline.clone.errors import CloneError
    from pipeline.clone.worker import connect_mysql

    credentials = {"host": "localhost", "port": tls_server.port, "username": "root", "password": ""}
    with pytest.raises(CloneError) as refused:
        connect_mysql(credentials)
    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.message
    assert refused.value.message.startswith("cannot connect to localhost: ")
    assert refused.value.hint.startswith("the cluster's certificate must be signed by an RDS CA")
    assert refused.value.retryable is False  # a rerun would meet the same certificate
    assert cipher(f"mysql://root@localhost:{tls_server.port}/mysql?ssl=insecure")  # what it accepted before
