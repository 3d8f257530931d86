"""Core's signing keys: created once, refused when damaged, rotated with an overlap."""

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hivematrix.common.keys import jwk_thumbprint
from hivematrix.core import create_app
from hivematrix.core.keyring import KEYRING_FILE, KeyRing, KeyRingError

HOUR = timedelta(hours=1)


def test_first_start_creates_a_private_key(tmp_path: Path) -> None:
    ring = KeyRing.open(tmp_path / "keys", publish_for=HOUR)
    pem = tmp_path / "keys" / f"{ring.current.kid}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert b"PRIVATE KEY" in pem.read_bytes()


def test_kid_is_the_rfc7638_thumbprint(tmp_path: Path) -> None:
    ring = KeyRing.open(tmp_path / "keys", publish_for=HOUR)
    jwk = ring.jwks()["keys"][0]
    assert jwk["kid"] == jwk_thumbprint(jwk) == ring.current.kid
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in jwk  # never the private part


def test_restart_loads_the_same_key(tmp_path: Path) -> None:
    first = KeyRing.open(tmp_path / "keys", publish_for=HOUR).current.kid
    assert KeyRing.open(tmp_path / "keys", publish_for=HOUR).current.kid == first


def test_corrupt_key_stops_core_at_start(core_settings: dict, hm_home: Path) -> None:
    ring = KeyRing.open(hm_home / "keys", publish_for=HOUR)
    (hm_home / "keys" / f"{ring.current.kid}.pem").write_bytes(b"-----BEGIN garbage")
    with pytest.raises(KeyRingError, match="corrupt"):
        create_app(core_settings)


def test_missing_key_file_stops_core_at_start(core_settings: dict, hm_home: Path) -> None:
    ring = KeyRing.open(hm_home / "keys", publish_for=HOUR)
    (hm_home / "keys" / f"{ring.current.kid}.pem").unlink()
    with pytest.raises(KeyRingError, match="missing"):
        create_app(core_settings)


def test_keys_without_index_are_not_silently_replaced(tmp_path: Path) -> None:
    KeyRing.open(tmp_path / "keys", publish_for=HOUR)
    (tmp_path / "keys" / KEYRING_FILE).unlink()
    with pytest.raises(KeyRingError, match=r"no keyring\.json"):
        KeyRing.open(tmp_path / "keys", publish_for=HOUR)


def test_unreadable_index_is_an_error(tmp_path: Path) -> None:
    KeyRing.open(tmp_path / "keys", publish_for=HOUR)
    (tmp_path / "keys" / KEYRING_FILE).write_text("{not json")
    with pytest.raises(KeyRingError, match="unreadable"):
        KeyRing.open(tmp_path / "keys", publish_for=HOUR)


def test_rotation_publishes_old_and_new_until_old_tokens_expire(tmp_path: Path) -> None:
    ring = KeyRing.open(tmp_path / "keys", publish_for=HOUR)
    old = ring.current.kid
    rotated_at = datetime.now(UTC)
    new = ring.rotate(now=rotated_at).kid
    assert ring.current.kid == new != old
    assert {key.kid for key in ring.published(rotated_at + HOUR / 2)} == {old, new}
    assert {key.kid for key in ring.published(rotated_at + HOUR)} == {new}


def test_rotation_deletes_keys_nobody_needs(tmp_path: Path) -> None:
    ring = KeyRing.open(tmp_path / "keys", publish_for=HOUR)
    first = ring.current.kid
    start = datetime.now(UTC)
    ring.rotate(now=start)
    ring.rotate(now=start + 2 * HOUR)
    assert not (tmp_path / "keys" / f"{first}.pem").exists()
    assert len(list((tmp_path / "keys").glob("*.pem"))) == 2
    reopened = KeyRing.open(tmp_path / "keys", publish_for=HOUR)
    assert reopened.current.kid == ring.current.kid


def test_jwks_endpoint_serves_published_keys(core, core_app) -> None:
    ring = core_app.extensions["core.keys"]
    old = ring.current.kid
    new = ring.rotate().kid
    response = core.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert {key["kid"] for key in response.json["keys"]} == {old, new}
