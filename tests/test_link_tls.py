"""The link over TLS against a real mosquitto TLS listener, with certificates made here."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hallsim.broker import Mosquitto
from link_support import Watcher, start_link, unique_site
from support import wait_for

from edge.messages import LinkStatus


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer_name: x509.Name, issuer_key, ca: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
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


def _write(path, data: bytes, private: bool = False) -> str:
    path.write_bytes(data)
    os.chmod(path, 0o600 if private else 0o644)
    return str(path)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate for the controller."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("hall test CA", ca_key, _name("hall test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate("127.0.0.1", server_key, ca_cert.subject, ca_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _certificate("lgsc-qinshui-hall-01", client_key, ca_cert.subject, ca_key)
    pem = serialization.Encoding.PEM
    return {
        "ca": _write(folder / "ca.crt", ca_cert.public_bytes(pem)),
        "server_cert": _write(folder / "server.crt", server_cert.public_bytes(pem)),
        "server_key": _write(folder / "server.key", _key_pem(server_key), private=True),
        "client_cert": _write(folder / "client.crt", client_cert.public_bytes(pem)),
        "client_key": _write(folder / "client.key", _key_pem(client_key), private=True),
        "folder": folder,
    }


def connection_attempts(rig) -> int:
    """Failed attempts so far (the client is built on the link's own thread, after READY)."""
    connection = rig.feature("link").connection
    return connection.backoff.attempt if connection is not None else 0


def test_tls_with_a_client_certificate(tmp_path, make_hall, pki):
    tls = (pki["ca"], pki["server_cert"], pki["server_key"])
    with Mosquitto(tmp_path / "broker", tls=tls) as broker:
        site = unique_site()
        watcher = Watcher(broker.port, site)  # the platform side on the plain listener
        rig = start_link(
            make_hall,
            tmp_path,
            broker.tls_port,
            site,
            tls=True,
            ca_file=pki["ca"],
            cert_file=pki["client_cert"],
            key_file=pki["client_key"],
        )
        try:
            wait_for(lambda: watcher.on("/hall-01/state"), what="birth over TLS")
        finally:
            rig.stop()
            watcher.close()


def test_tls_with_username_and_password_file(tmp_path, make_hall, pki):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "hall-01", "s3cret"], check=True)
    os.chmod(passwords, 0o644)  # mosquitto (maybe another user) reads it
    secret = tmp_path / "password"
    _write(secret, b"s3cret\n", private=True)
    tls = (pki["ca"], pki["server_cert"], pki["server_key"])
    with Mosquitto(tmp_path / "broker", tls=tls, password_file=str(passwords)) as broker:
        site = unique_site()
        watcher = Watcher(broker.port, site)
        common = {"tls": True, "ca_file": pki["ca"], "username": "hall-01"}
        wrong = tmp_path / "wrong"
        _write(wrong, b"nope", private=True)
        refused = start_link(
            make_hall,
            tmp_path / "a",
            broker.tls_port,
            site,
            watch=(LinkStatus,),
            password_file=str(wrong),
            **common,
        )
        try:
            # Refused by the broker: no birth, keeps trying, never crashes, no offline news each try.
            wait_for(lambda: connection_attempts(refused) >= 2, what="refused attempts")
            assert not refused.feature("link").online and refused.seen[LinkStatus] == []
        finally:
            refused.stop()
        rig = start_link(
            make_hall, tmp_path / "b", broker.tls_port, site, password_file=str(secret), **common
        )
        try:
            wait_for(lambda: watcher.on("/hall-01/state"), what="birth with username/password")
        finally:
            rig.stop()
            watcher.close()


def test_untrusted_broker_certificate_is_refused(tmp_path, make_hall, pki):
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _certificate("someone else", other_key, _name("someone else"), other_key, ca=True)
    other = _write(tmp_path / "other.crt", other_ca.public_bytes(serialization.Encoding.PEM))
    tls = (pki["ca"], pki["server_cert"], pki["server_key"])
    with Mosquitto(tmp_path / "broker", tls=tls) as broker:
        rig = start_link(make_hall, tmp_path, broker.tls_port, unique_site(), tls=True, ca_file=other)
        try:
            wait_for(lambda: connection_attempts(rig) >= 1, what="a failed handshake")
            assert not rig.feature("link").online
        finally:
            rig.stop()


def test_a_missing_ca_file_fails_the_start_before_anything_is_wired(tmp_path):
    from support import make_config

    from edge.clock import Clock
    from edge.core import Core
    from edge.link.feature import LinkFeature
    from edge.storage import Storage

    config = make_config(tmp_path, {"mqtt": {"tls": True, "ca_file": str(tmp_path / "missing.crt")}})
    storage = Storage(config.storage.dir)
    core = Core(config, storage, Clock())
    try:
        with pytest.raises(OSError):
            LinkFeature(config).start(core)
        assert core.link is None and core.outbox.listeners == []
    finally:
        storage.close()
