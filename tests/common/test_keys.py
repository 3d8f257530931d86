"""Signing keys named by their RFC 7638 thumbprint, as Core publishes them."""

import jwt
import pytest

from hivematrix.common.keys import SigningKey, jwk_thumbprint, jwks_document

# RFC 7638, section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC_N = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
         "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
         "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
         "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
RFC_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_matches_the_rfc_7638_example() -> None:
    jwk = {"kty": "RSA", "n": RFC_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert jwk_thumbprint(jwk) == RFC_THUMBPRINT


def test_thumbprint_ignores_optional_members() -> None:
    bare = {"kty": "RSA", "n": RFC_N, "e": "AQAB"}
    assert jwk_thumbprint({**bare, "use": "sig", "kid": "x"}) == jwk_thumbprint(bare)


def test_kid_is_the_thumbprint_of_the_public_key(signing_key: SigningKey) -> None:
    assert signing_key.kid == jwk_thumbprint(signing_key.public_jwk())


def test_kid_survives_a_pem_round_trip(signing_key: SigningKey) -> None:
    assert SigningKey.from_pem(signing_key.private_pem()).kid == signing_key.kid


def test_different_keys_have_different_kids(signing_key: SigningKey) -> None:
    assert SigningKey.generate().kid != signing_key.kid


def test_from_pem_refuses_non_rsa_keys() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(ValueError, match="RSA"):
        SigningKey.from_pem(pem)


def test_public_jwk_has_no_private_members(signing_key: SigningKey) -> None:
    jwk = signing_key.public_jwk()
    assert {"kty", "n", "e", "kid", "alg", "use"} <= set(jwk)
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    assert (jwk["alg"], jwk["use"]) == ("RS256", "sig")


def test_signed_token_verifies_with_the_published_key(signing_key: SigningKey) -> None:
    token = signing_key.sign({"sub": "x"})
    assert jwt.get_unverified_header(token)["kid"] == signing_key.kid
    [published] = jwt.PyJWKSet.from_dict(jwks_document([signing_key])).keys
    assert jwt.decode(token, published.key, algorithms=["RS256"]) == {"sub": "x"}
