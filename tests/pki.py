"""Certificates for TLS brokers in tests and benches: a CA, a server for 127.0.0.1, a client."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(
    subject: str, key: Any, issuer_name: x509.Name, issuer_key: Any, ca: bool = False
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def write(path: Path, data: bytes, private: bool = False) -> str:
    path.write_bytes(data)
    os.chmod(path, 0o600 if private else 0o644)
    return str(path)


def key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_pki(folder: Path) -> dict[str, Any]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for the controller."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("hall test CA", ca_key, name("hall test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("127.0.0.1", server_key, ca_cert.subject, ca_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = certificate("lgsc-qinshui-hall-01", client_key, ca_cert.subject, ca_key)
    pem = serialization.Encoding.PEM
    return {
        "ca": write(folder / "ca.crt", ca_cert.public_bytes(pem)),
        "server_cert": write(folder / "server.crt", server_cert.public_bytes(pem)),
        "server_key": write(folder / "server.key", key_pem(server_key), private=True),
        "client_cert": write(folder / "client.crt", client_cert.public_bytes(pem)),
        "client_key": write(folder / "client.key", key_pem(client_key), private=True),
        "folder": folder,
    }


def tls_files(folder: Path) -> tuple[str, str, str]:
    """(CA file, server certificate, server key) for ``Mosquitto(tls=...)``."""
    pki = make_pki(folder)
    return pki["ca"], pki["server_cert"], pki["server_key"]


def other_ca(path: Path) -> str:
    """A CA file that signed nothing of ours: a broker it is given for is untrusted."""
    key = ec.generate_private_key(ec.SECP256R1())
    return write(
        path,
        certificate("someone else", key, name("someone else"), key, ca=True).public_bytes(
            serialization.Encoding.PEM
        ),
    )


def hashed_folder(folder: Path, *ca_files: str | Path) -> str:
    """A folder of CAs named by subject hash, as /etc/ssl/certs (``openssl rehash``)."""
    folder.mkdir()
    for n, ca in enumerate(ca_files):
        write(folder / f"ca{n}.pem", Path(ca).read_bytes())
    subprocess.run(["openssl", "rehash", str(folder)], check=True, capture_output=True)
    return str(folder)
