"""What the identity tests share: keys generated per test run, JWKS documents written
to files or served over HTTP from this process, and tokens of every broken kind."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from seminarops_devtools.tokens import SigningKey, jwks
from seminarops_shared.clock import utc_now
from seminarops_shared.settings import AuthSettings, Role

ISSUER = "https://identity.test.example/"
AUDIENCE = "seminarops-test"
STATIC_TOKENS = {role: f"identity-{role.value}-token" for role in Role}


def auth_settings(jwks_location: str, **overrides: Any) -> AuthSettings:
    """Static tokens for every role beside JWTs verified against ``jwks_location``."""
    return AuthSettings(
        tokens={role: [SecretStr(token)] for role, token in STATIC_TOKENS.items()},
        jwks=jwks_location,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        **overrides,
    )


def write_jwks(path: Path, *keys: SigningKey) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jwks(keys)))
    tmp.replace(path)


def token(key: SigningKey, subject: str, *roles: str, **claims: Any) -> str:
    """A valid token of ``key`` for ``subject`` with ``roles``, ``claims`` overriding."""
    now = utc_now()
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "roles": list(roles),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=10)).timestamp()),
    }
    return key.sign({k: v for k, v in {**base, **claims}.items() if v is not None})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def unsigned(key: SigningKey, subject: str, *roles: str) -> str:
    """The claims of a valid token with ``alg: none`` and no signature."""
    claims = json.loads(base64.urlsafe_b64decode(_pad(token(key, subject, *roles).split(".")[1])))
    return _segments({"alg": "none", "kid": key.kid, "typ": "JWT"}, claims) + "."


def hmac_with_public_key(key: SigningKey, subject: str, *roles: str) -> str:
    """The classic confusion attack: HS256 keyed with the (public) verification key."""
    claims = json.loads(base64.urlsafe_b64decode(_pad(token(key, subject, *roles).split(".")[1])))
    signing_input = _segments({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims)
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def with_claims_swapped(signed: str, **claims: Any) -> str:
    """``signed`` with its payload changed and its signature kept."""
    header, payload, signature = signed.split(".")
    changed = {**json.loads(base64.urlsafe_b64decode(_pad(payload))), **claims}
    return f"{header}.{_b64(json.dumps(changed).encode())}.{signature}"


def _pad(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


@dataclass
class ServedJwks:
    """A JWKS document served over HTTP on a loopback port; counts its fetches."""

    document: bytes = b'{"keys": []}'
    fetches: int = 0
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, *keys: SigningKey) -> None:
        with self._lock:
            self.document = json.dumps(jwks(keys)).encode()

    def fetched(self) -> bytes:
        with self._lock:
            self.fetches += 1
            return self.document


@contextmanager
def serving_jwks(*keys: SigningKey) -> Iterator[ServedJwks]:
    served = ServedJwks()
    served.publish(*keys)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            body = served.fetched()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # no request lines on the test output

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
