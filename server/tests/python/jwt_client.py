"""An OAuth client of another stack against the m2m token service in JWT mode.

Reads the service's RFC 8414 metadata, obtains an access token by the client-credentials
grant with Authlib's OAuth2Session (client_secret_basic), and verifies it on its own with
PyJWT against the keys published at the metadata's jwks_uri: EdDSA signature, `typ` at+jwt
(RFC 9068), issuer, audience and expiry. A copy of the token with one payload byte changed
must then fail the signature check.

Usage: jwt_client.py BASE_URL CLIENT_ID CLIENT_SECRET AUDIENCE

On success prints one JSON line with the verified claims and exits 0; otherwise prints the
reason to stderr and exits 1.
"""

import base64
import json
import sys
import time

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session

TIMEOUT_SECONDS = 10
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti", "sub"]


class Failure(Exception):
    """A check that did not hold."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def b64url_decode(segment):
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def metadata(base_url):
    url = f"{base_url}/.well-known/oauth-authorization-server"
    response = requests.get(url, timeout=TIMEOUT_SECONDS)
    check(response.status_code == 200, f"GET {url}: status {response.status_code}")
    document = response.json()
    # RFC 8414 §3.3: the issuer is the URL the metadata was fetched from.
    check(
        document.get("issuer") == base_url,
        f"metadata issuer {document.get('issuer')!r} is not {base_url!r}",
    )
    for name in ("token_endpoint", "jwks_uri"):
        check(isinstance(document.get(name), str), f"metadata without {name}")
    check(
        "client_credentials" in document.get("grant_types_supported", []),
        "metadata does not list the client_credentials grant",
    )
    return document


def fetch_token(token_endpoint, client_id, client_secret):
    session = OAuth2Session(
        client_id=client_id,
        client_secret=client_secret,
        token_endpoint_auth_method="client_secret_basic",
    )
    try:
        token = session.fetch_token(
            token_endpoint,
            grant_type="client_credentials",
            timeout=TIMEOUT_SECONDS,
        )
    finally:
        session.close()
    check(
        str(token.get("token_type", "")).lower() == "bearer",
        f"token_type is {token.get('token_type')!r}",
    )
    check(
        isinstance(token.get("expires_in"), int) and token["expires_in"] > 0,
        f"expires_in is {token.get('expires_in')!r}",
    )
    check(isinstance(token.get("access_token"), str), "no access_token in the answer")
    return token


def verify(access_token, jwks_client, issuer, audience):
    """The token's claims, when its signature, type and registered claims hold."""
    header = jwt.get_unverified_header(access_token)
    check(header.get("alg") == "EdDSA", f"alg is {header.get('alg')!r}")
    check(header.get("typ") == "at+jwt", f"typ is {header.get('typ')!r}")
    check(isinstance(header.get("kid"), str), "no kid in the header")
    signing_key = jwks_client.get_signing_key_from_jwt(access_token)
    check(
        signing_key.key_type == "OKP",
        f"the JWKS key {header['kid']!r} is of type {signing_key.key_type!r}",
    )
    return jwt.decode(
        access_token,
        key=signing_key,
        algorithms=["EdDSA"],
        issuer=issuer,
        audience=audience,
        options={"require": REQUIRED_CLAIMS},
    )


def tampered(access_token):
    """The token with one byte of its payload changed; the payload stays valid JSON."""
    header, payload, signature = access_token.split(".")
    raw = bytearray(b64url_decode(payload))
    marker = b'"tenant_id":"'
    at = raw.find(marker)
    check(at >= 0, "no tenant_id in the raw payload")
    at += len(marker)
    raw[at] = ord("x") if raw[at] != ord("x") else ord("y")
    json.loads(raw)
    changed = b64url_encode(bytes(raw))
    check(changed != payload, "the tampered payload equals the original")
    return f"{header}.{changed}.{signature}"


def main(argv):
    if len(argv) != 5:
        raise Failure("usage: jwt_client.py BASE_URL CLIENT_ID CLIENT_SECRET AUDIENCE")
    base_url, client_id, client_secret, audience = argv[1:]
    base_url = base_url.rstrip("/")

    document = metadata(base_url)
    issuer = document["issuer"]
    token = fetch_token(document["token_endpoint"], client_id, client_secret)
    access_token = token["access_token"]
    jwks_client = jwt.PyJWKClient(document["jwks_uri"], cache_keys=False, timeout=TIMEOUT_SECONDS)

    try:
        claims = verify(access_token, jwks_client, issuer, audience)
    except jwt.PyJWTError as error:
        raise Failure(f"the access token does not verify: {type(error).__name__}: {error}")
    now = time.time()
    check(claims["exp"] > now, f"exp {claims['exp']} is not in the future")
    check(claims["iat"] <= now + 60, f"iat {claims['iat']} is in the future")
    check(claims.get("client_id") == client_id, f"client_id is {claims.get('client_id')!r}")
    check(
        claims.get("scope") == token.get("scope"),
        f"scope claim {claims.get('scope')!r} differs from the answer's {token.get('scope')!r}",
    )

    try:
        verify(tampered(access_token), jwks_client, issuer, audience)
    except jwt.InvalidSignatureError:
        pass
    else:
        raise Failure("a token with a changed payload byte passed verification")

    print(
        json.dumps(
            {
                "iss": claims["iss"],
                "aud": claims["aud"],
                "kid": jwt.get_unverified_header(access_token)["kid"],
                "tenant_id": claims.get("tenant_id"),
                "scope": claims.get("scope"),
                "client_id": claims.get("client_id"),
                "sub": claims["sub"],
                "expires_in": token["expires_in"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Failure as failure:
        print(f"jwt_client: {failure}", file=sys.stderr)
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - any other error is a failure too
        print(f"jwt_client: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
