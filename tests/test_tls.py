"""An endpoint whose TLS certificate is refused fails at once, clearly, and is not retried.

A real TLS server on loopback with a self-signed certificate (made here with
``cryptography``): the client verifies certificates against the system's CAs, so
it refuses this one, as it would a wrong CA bundle or a man in the middle. The
server counts handshakes, which is how the tests see that nothing was retried.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drs_pipeline.config import load_settings_file
from drs_pipeline.sync import run_sync

from .conftest import QUICK_RETRY

PROJECT_ID = "0123456789abcdef0123456789abcdef"


@dataclass
class UntrustedEndpoint:
    url: str
    handshakes: int = 0


@pytest.fixture
def untrusted_endpoint(tmp_path: Path) -> Iterator[UntrustedEndpoint]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed_certificate(tmp_path))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    endpoint = UntrustedEndpoint(f"https://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            endpoint.handshakes += 1
            connection.settimeout(5)
            try:
                # The client refuses the certificate: the handshake fails on our side too.
                context.wrap_socket(connection, server_side=True).close()
            except (ssl.SSLError, OSError):
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_a_refused_drs_certificate_fails_the_project_at_once(
    untrusted_endpoint: UntrustedEndpoint, tmp_path: Path
) -> None:
    config = tmp_path / "drs.yaml"
    config.write_text(
        f"projects:\n  - project_id: '{PROJECT_ID}'\n    region: cn-south-2\n"
        f"    endpoint: {untrusted_endpoint.url}\n"
        "auth: {method: token, token_env: DRS_AUTH_TOKEN}\n"
    )
    settings = load_settings_file(config, {"DRS_AUTH_TOKEN": "a-token"})

    report = run_sync(settings, tmp_path / "history.duckdb", retry=QUICK_RETRY)

    (project,) = report.projects
    error = project.run.error or ""
    assert project.run.outcome == "failed"
    assert f"project {PROJECT_ID}" in error and "page offset 0" in error
    assert f"TLS certificate of {untrusted_endpoint.url}" in error
    assert "self-signed certificate" in error or "self signed certificate" in error
    assert "attempts" not in error, "a refused certificate is not retried"
    assert untrusted_endpoint.handshakes == 1


def test_a_refused_iam_certificate_fails_the_project_at_once(
    untrusted_endpoint: UntrustedEndpoint, tmp_path: Path
) -> None:
    config = tmp_path / "drs.yaml"
    config.write_text(
        f"projects:\n  - project_id: '{PROJECT_ID}'\n    region: cn-south-2\n"
        # Never reached: the token it would need is never issued.
        "    endpoint: https://drs.cn-south-2.example.invalid\n"
        f"auth: {{method: password, iam_endpoint: '{untrusted_endpoint.url}', "
        "domain_name: acme, user_name: reader, password_env: IAM_PASSWORD}\n"
    )
    settings = load_settings_file(config, {"IAM_PASSWORD": "a-password"})

    report = run_sync(settings, tmp_path / "history.duckdb", retry=QUICK_RETRY)

    (project,) = report.projects
    error = project.run.error or ""
    assert project.run.outcome == "failed"
    assert f"IAM {untrusted_endpoint.url}" in error and "TLS certificate refused" in error
    assert "attempts" not in error
    assert "a-password" not in error
    assert untrusted_endpoint.handshakes == 1


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "server.pem", directory / "server.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path
