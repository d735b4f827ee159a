"""The link over TLS against a real mosquitto TLS listener, with certificates made here."""

from __future__ import annotations

import os
import subprocess

import pytest
from hallsim.broker import Mosquitto
from link_support import Watcher, start_link, unique_site
from pki import hashed_folder, make_pki, other_ca, write
from support import wait_for

from edge.messages import LinkStatus


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


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
    write(secret, b"s3cret\n", private=True)
    tls = (pki["ca"], pki["server_cert"], pki["server_key"])
    with Mosquitto(tmp_path / "broker", tls=tls, password_file=str(passwords)) as broker:
        site = unique_site()
        watcher = Watcher(broker.port, site)
        common = {"tls": True, "ca_file": pki["ca"], "username": "hall-01"}
        wrong = tmp_path / "wrong"
        write(wrong, b"nope", private=True)
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
    other = other_ca(tmp_path / "other.crt")
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


def test_a_folder_of_cas_by_hash_is_trusted_like_the_file_and_read_only_as_needed(tmp_path, make_hall, pki):
    """The default mqtt.ca_file is /etc/ssl/certs: OpenSSL looks the broker's CA up by hash
    instead of keeping the whole bundle parsed (2.3 MiB of the daemon for Debian's 144 CAs)."""
    other = other_ca(tmp_path / "other.crt")
    trusted = hashed_folder(tmp_path / "certs", other, pki["ca"])
    untrusted = hashed_folder(tmp_path / "other-certs", other)
    tls = (pki["ca"], pki["server_cert"], pki["server_key"])
    with Mosquitto(tmp_path / "broker", tls=tls) as broker:
        site = unique_site()
        watcher = Watcher(broker.port, site)
        refused = start_link(make_hall, tmp_path / "a", broker.tls_port, site, tls=True, ca_file=untrusted)
        try:
            wait_for(lambda: connection_attempts(refused) >= 1, what="a failed handshake")
            assert not refused.feature("link").online
        finally:
            refused.stop()
        rig = start_link(make_hall, tmp_path / "b", broker.tls_port, site, tls=True, ca_file=trusted)
        try:
            wait_for(lambda: watcher.on("/hall-01/state"), what="birth over TLS with a CA folder")
        finally:
            rig.stop()
            watcher.close()
