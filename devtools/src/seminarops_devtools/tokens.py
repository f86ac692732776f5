"""Development identities: a local stand-in for the platform's identity provider.

``make up`` calls ``ensure_development_identity`` and points every service's
``AUTH_JWKS`` at the JWKS written here (issuer ``DEVELOPMENT_ISSUER``, audience
``DEVELOPMENT_AUDIENCE``); ``make token ROLE=participant SUB=p-1`` (``python -m
seminarops_devtools.tokens --role participant --sub p-1``) prints a token the services
then accept. The key pair is generated once into ``.run/identity/`` (the private key
readable by its owner only) and kept across ``make down``/``make up``; ``make clean``
removes it. Tests use ``SigningKey`` to mint tokens with keys of their own.

Never for production: the identity provider of the platform issues the real tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from seminarops_shared.clock import utc_now

DEVELOPMENT_ISSUER = "https://identity.seminarops.local/"
DEVELOPMENT_AUDIENCE = "seminarops"
DEFAULT_LIFETIME = timedelta(hours=8)
ROLES = ("operator", "platform", "participant")


@dataclass(frozen=True)
class SigningKey:
    """An EC P-256 key pair (ES256) named ``kid``: signs tokens, publishes its JWKS entry."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        return cls(kid or f"dev-{secrets.token_hex(6)}", ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes, *, kid: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("the development key must be an EC key")
        return cls(kid, key)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key())
        )
        return {**entry, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """``claims`` signed with ES256, ``kid`` in the header (``headers`` override)."""
        return jwt.encode(
            dict(claims),
            self.private_key,
            algorithm="ES256",
            headers={"kid": self.kid, **(headers or {})},
        )

    def token(
        self,
        *,
        subject: str,
        roles: Iterable[str],
        issuer: str = DEVELOPMENT_ISSUER,
        audience: str = DEVELOPMENT_AUDIENCE,
        lifetime: timedelta = DEFAULT_LIFETIME,
        now: datetime | None = None,
    ) -> str:
        """A token for ``subject`` with ``roles``, valid from ``now`` for ``lifetime``."""
        issued = now or utc_now()
        return self.sign(
            {
                "iss": issuer,
                "aud": audience,
                "sub": subject,
                "roles": list(roles),
                "iat": int(issued.timestamp()),
                "nbf": int(issued.timestamp()),
                "exp": int((issued + lifetime).timestamp()),
            }
        )


def jwks(keys: Iterable[SigningKey]) -> dict[str, Any]:
    """The JWKS document publishing ``keys``' public halves."""
    return {"keys": [key.public_jwk() for key in keys]}


@dataclass(frozen=True)
class DevelopmentIdentity:
    """Where ``make up``'s identity lives, and the settings that make services trust it."""

    directory: Path

    @property
    def private_key_path(self) -> Path:
        return self.directory / "private-key.pem"

    @property
    def kid_path(self) -> Path:
        return self.directory / "kid"

    @property
    def jwks_path(self) -> Path:
        return self.directory / "jwks.json"

    def service_env(self) -> dict[str, str]:
        return {
            "AUTH_JWKS": str(self.jwks_path),
            "AUTH_JWT_ISSUER": DEVELOPMENT_ISSUER,
            "AUTH_JWT_AUDIENCE": DEVELOPMENT_AUDIENCE,
        }

    def signing_key(self) -> SigningKey:
        return SigningKey.from_pem(
            self.private_key_path.read_bytes(), kid=self.kid_path.read_text().strip()
        )


def identity_directory(run_dir: Path) -> Path:
    return run_dir / "identity"


def ensure_development_identity(run_dir: Path) -> DevelopmentIdentity:
    """The development identity in ``run_dir``, generated on first use (idempotent)."""
    identity = DevelopmentIdentity(identity_directory(run_dir))
    if identity.private_key_path.is_file() and identity.kid_path.is_file():
        key = identity.signing_key()
    else:
        identity.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = SigningKey.generate()
        _write_private(identity.private_key_path, key.private_pem())
        identity.kid_path.write_text(key.kid + "\n")
    # Rewritten each time from the private key: the JWKS always matches it.
    _replace(identity.jwks_path, json.dumps(jwks([key]), indent=2).encode() + b"\n")
    return identity


def _write_private(path: Path, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)


def _replace(path: Path, content: bytes) -> None:
    # Write-then-rename: a service re-reading the JWKS never sees half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seminarops_devtools.tokens",
        description="Print a development JWT that services started by `make up` accept.",
    )
    parser.add_argument(
        "--role",
        action="append",
        required=True,
        help=f"one of {', '.join(ROLES)}; several: repeat it or separate them with commas",
    )
    parser.add_argument("--sub", required=True, help="the participant id (the token's subject)")
    parser.add_argument(
        "--hours", type=float, default=DEFAULT_LIFETIME.total_seconds() / 3600, help="lifetime"
    )
    args = parser.parse_args(argv)
    roles = [role for given in args.role for role in given.split(",") if role]
    if unknown := sorted(set(roles) - set(ROLES)):
        parser.error(f"unknown role(s) {', '.join(unknown)}: use {', '.join(ROLES)}")
    from .devstack import find_root

    identity = ensure_development_identity(find_root() / ".run")
    token = identity.signing_key().token(
        subject=args.sub, roles=roles, lifetime=timedelta(hours=args.hours)
    )
    print(token)  # noqa: T201 - the command's output is the token
    return 0


if __name__ == "__main__":
    sys.exit(main())
