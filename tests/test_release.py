"""A release bundle is used only when every byte of it is what the release key signed.

read_bundle refuses, each with its reason: a tampered wheel, a wrong size, a manifest changed
after signing, an unknown key, a signature by another key, a hostile tar (absolute names, ``..``,
links, devices, a name twice) and files the manifest does not list.  Nothing is ever written
while reading; copy_member writes only the listed file, into the folder it is given.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from release_rig import ReleaseKey, bundle_members, manifest_for, signed_bundle, synthetic_wheel, tar_bytes

from edge.release import (
    ReleaseRefused,
    compare_versions,
    copy_member,
    read_bundle,
    signature_bytes,
)


@pytest.fixture
def key() -> ReleaseKey:
    return ReleaseKey()


def refusal(path: Path, trusted: dict, **kwargs: bool) -> ReleaseRefused:
    with pytest.raises(ReleaseRefused) as caught:
        read_bundle(path, trusted, **kwargs)
    return caught.value


def rewrite(path: Path, change) -> Path:
    """The bundle with ``change(members)`` applied to its (name, bytes) list."""
    members = bundle_members(path)
    path.write_bytes(tar_bytes(change(members)))
    return path


def test_a_good_bundle_gives_its_verified_manifest(tmp_path, key):
    bundle = signed_bundle(tmp_path, "0.2.0", key)
    manifest = read_bundle(bundle, key.trusted())
    name, data = synthetic_wheel("0.2.0")
    assert (manifest.version, manifest.min_replaces, manifest.kid) == ("0.2.0", "0.1.0", key.kid)
    assert manifest.wheels == [f"wheels/{name}"]
    assert manifest.files[f"wheels/{name}"].size == len(data) == manifest.size()
    assert manifest.signed


def test_a_wheel_changed_after_signing_is_tampered(tmp_path, key):
    def flip_a_byte(members):
        return [(n, d[:-1] + bytes([d[-1] ^ 1]) if n.endswith(".whl") else d) for n, d in members]

    bundle = rewrite(signed_bundle(tmp_path, "0.2.0", key), flip_a_byte)
    refused = refusal(bundle, key.trusted())
    assert refused.reason == "tampered_file"
    assert "sha256 differs" in refused.message


def test_a_wheel_of_another_size_is_tampered(tmp_path, key):
    bundle = rewrite(
        signed_bundle(tmp_path, "0.2.0", key),
        lambda members: [(n, d + b"x" if n.endswith(".whl") else d) for n, d in members],
    )
    refused = refusal(bundle, key.trusted())
    assert refused.reason == "tampered_file"
    assert "is not" in refused.message and "bytes as the manifest says" in refused.message


def test_a_manifest_with_a_changed_hash_no_longer_verifies(tmp_path, key):
    def new_hash(members):
        out = []
        for name, data in members:
            if name == "manifest.json":
                document = json.loads(data)
                for entry in document["files"].values():
                    entry["sha256"] = "0" * 64
                out.append((name, json.dumps(document).encode()))
                continue
            out.append((name, data))
        return out

    refused = refusal(rewrite(signed_bundle(tmp_path, "0.2.0", key), new_hash), key.trusted())
    assert refused.reason == "bad_signature"


def test_a_bundle_signed_by_an_unknown_key_is_refused_naming_the_key(tmp_path, key):
    stranger = ReleaseKey("rel-stranger")
    refused = refusal(signed_bundle(tmp_path, "0.2.0", stranger), key.trusted())
    assert refused.reason == "unknown_release_key"
    assert "'rel-stranger'" in refused.message and "releases.public_keys" in refused.message


def test_a_signature_by_another_key_under_a_trusted_kid_is_bad(tmp_path, key):
    impostor = ReleaseKey(key.kid)  # same kid, other private key
    refused = refusal(signed_bundle(tmp_path, "0.2.0", impostor), key.trusted())
    assert refused.reason == "bad_signature"
    # unsigned_ok (the installer's first install) lets an unknown kid through, never a bad signature
    assert refusal(signed_bundle(tmp_path, "0.2.0", impostor), key.trusted(), unsigned_ok=True).reason == (
        "bad_signature"
    )
    manifest = read_bundle(signed_bundle(tmp_path / "s", "0.2.0", ReleaseKey("rel-x")), {}, unsigned_ok=True)
    assert manifest.signed is False and manifest.kid == "rel-x"


def test_a_file_the_manifest_does_not_list_is_refused(tmp_path, key):
    extra = ("wheels/evil-1.0-py3-none-any.whl", b"x")
    bundle = rewrite(signed_bundle(tmp_path, "0.2.0", key), lambda members: [*members, extra])
    refused = refusal(bundle, key.trusted())
    assert refused.reason == "tampered_file"
    assert "not in the signed manifest" in refused.message


def test_a_listed_file_missing_from_the_bundle_is_refused(tmp_path, key):
    bundle = rewrite(
        signed_bundle(tmp_path, "0.2.0", key), lambda members: [m for m in members if ".whl" not in m[0]]
    )
    assert refusal(bundle, key.trusted()).reason == "tampered_file"


def hostile(tmp_path: Path, key: ReleaseKey, add) -> Path:
    """A signed bundle with one more member made by ``add(tar)``."""
    good = bundle_members(signed_bundle(tmp_path, "0.2.0", key))
    path = tmp_path / "hostile.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in good:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add(tar)
    return path


def _file(name: str, data: bytes = b"owned"):
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _special(name: str, kind: bytes, target: str = ""):
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        tar.addfile(info)

    return add


@pytest.mark.parametrize(
    ("add", "says"),
    [
        (_file("../escaped.whl"), "absolute or parent path"),
        (_file("wheels/../../escaped"), "absolute or parent path"),
        (_file("/tmp/hall-edge-absolute"), "absolute or parent path"),
        (_special("wheels/link.whl", tarfile.SYMTYPE, "/etc/passwd"), "link or a device"),
        (_special("wheels/hard.whl", tarfile.LNKTYPE, "manifest.json"), "link or a device"),
        (_special("wheels/tty.whl", tarfile.CHRTYPE), "link or a device"),
        (_special("wheels/fifo.whl", tarfile.FIFOTYPE), "link or a device"),
        (_file("manifest.json", b"{}"), "in the tar twice"),
        (_file("setup.py", b"import os"), "is not manifest.*"),
    ],
    ids=["parent", "parent-inside", "absolute", "symlink", "hardlink", "device", "fifo", "twice", "other"],
)
def test_a_hostile_tar_is_refused_whole_and_nothing_is_written(tmp_path, key, add, says):
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    path = hostile(tmp_path, key, add)
    refused = refusal(path, key.trusted())
    assert refused.reason == "malformed_bundle"
    assert says in refused.message
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert not Path("/tmp/hall-edge-absolute").exists()


@pytest.mark.parametrize(
    "content", [b"", b"not a tar at all", b"\x1f\x8b\x08\x00" + b"\x00" * 600], ids=["empty", "text", "gzip"]
)
def test_a_file_that_is_not_a_plain_tar_is_malformed(tmp_path, key, content):
    path = tmp_path / "bundle.tar"
    path.write_bytes(content)
    assert refusal(path, key.trusted()).reason == "malformed_bundle"


def test_a_missing_bundle_is_malformed_not_a_crash(tmp_path, key):
    assert refusal(tmp_path / "nothing.tar", key.trusted()).reason == "malformed_bundle"


def test_a_signed_manifest_with_a_bad_field_is_malformed(tmp_path, key):
    name, data = synthetic_wheel("0.2.0")
    raw = manifest_for("latest", {f"wheels/{name}": data})
    members = [("manifest.json", raw), ("manifest.sig", signature_bytes(raw, key.private, key.kid))]
    path = tmp_path / "b.tar"
    path.write_bytes(tar_bytes([*members, (f"wheels/{name}", data)]))
    refused = refusal(path, key.trusted())
    assert refused.reason == "malformed_bundle"
    assert "version" in refused.message


def test_copy_member_writes_only_the_listed_file_into_the_folder_and_checks_it_again(tmp_path, key):
    bundle = signed_bundle(tmp_path / "b", "0.2.0", key)
    manifest = read_bundle(bundle, key.trusted())
    out = tmp_path / "out"
    out.mkdir()
    written = copy_member(bundle, manifest, manifest.wheels[0], out)
    assert written.parent == out and written.read_bytes() == synthetic_wheel("0.2.0")[1]
    with pytest.raises(ReleaseRefused):
        copy_member(bundle, manifest, "wheels/other-1-py3-none-any.whl", out)
    # the bundle swapped for another after read_bundle: the copy is refused and removed
    rewrite(bundle, lambda members: [(n, d + b"!" if n.endswith(".whl") else d) for n, d in members])
    second = tmp_path / "second"
    second.mkdir()
    with pytest.raises(ReleaseRefused) as caught:
        copy_member(bundle, manifest, manifest.wheels[0], second)
    assert caught.value.reason == "tampered_file"
    assert list(second.iterdir()) == []


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("0.2.0", "0.1.0", 1),
        ("0.1.0", "0.2.0", -1),
        ("0.2", "0.2.0", 0),
        ("0.10.0", "0.9.9", 1),
        ("1.0.0rc1", "1.0.0", -1),
        ("1.0.0b2", "1.0.0rc1", -1),
        ("1.0.0.post1", "1.0.0", 1),
        ("1.0.0.dev1", "1.0.0a1", -1),
        ("0.1.0+src.1a2b3c4d5e6f", "0.1.0", 0),
    ],
)
def test_versions_compare_as_pip_would(a, b, expected):
    assert compare_versions(a, b) == expected


@pytest.mark.parametrize("text", ["", "latest", "1.0/../x", "v1.0", "1.0.0-beta"])
def test_a_string_that_is_not_a_version_never_compares(text):
    with pytest.raises(ValueError, match="is not a version"):
        compare_versions(text, "0.1.0")
