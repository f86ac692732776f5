"""Who is calling, and whether they may (CONTRACT.md "Security"; docs/security.md).

Two kinds of bearer token are accepted:

- static tokens (``AUTH_TOKENS``), one role each, for machines: no person behind them;
- JWTs of the platform's identity provider, verified against the keys of ``AUTH_JWKS``
  with ``AUTH_JWT_ISSUER`` and ``AUTH_JWT_AUDIENCE``: ``sub`` is the participant id,
  the ``roles`` claim the roles.

A route gets the ``Caller`` from one dependency (``CurrentCaller``, or
``require_role(...)`` which also checks the role). A missing, unknown, expired, foreign
or badly signed token is 401 (``WWW-Authenticate: Bearer``, with
``error="invalid_token"`` when a token was presented); a caller without the role is
403, and so is a participant acting for someone else (``Caller.may_act_for``). With no
credential configured at all the service runs open (local development only) and warns
about it at start-up.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import structlog
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import Refused
from .settings import AuthSettings, Role

__all__ = [
    "AuthNotConfigured",
    "Authenticator",
    "Caller",
    "CurrentCaller",
    "JwksUnavailable",
    "NotYourData",
    "current_caller",
    "require_role",
    "role_of",
]

_log = structlog.get_logger(__name__)
_bearer = HTTPBearer(
    auto_error=False,
    description="A static token issued for one role (machines), or a JWT of the identity "
    "provider (people: `sub` is the participant id, `roles` the roles).",
)
# A JWKS document is a few keys; anything much larger is not one.
_MAX_JWKS_BYTES = 1 << 20
_JWKS_FETCH_TIMEOUT_S = 5.0
_JWT_REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


class AuthNotConfigured(RuntimeError):
    """The auth configuration cannot protect the API (``AUTH_REQUIRED`` without any
    credential, or a JWKS that cannot be read): the service stops at start-up."""


class JwksUnavailable(RuntimeError):
    """The JWKS could not be read or holds no usable key; the message says why."""


class NotYourData(Refused):
    """A participant asked for, or tried to change, someone else's data."""


# ---- the caller -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the roles they hold and, for a person, their participant id.

    ``unrestricted``: the API runs open (no credential configured, or an anonymous call
    to ``make up``'s development stack), so every check passes."""

    roles: frozenset[Role]
    participant_id: str | None = None
    unrestricted: bool = False

    @classmethod
    def anonymous_on_open_api(cls) -> Caller:
        return cls(roles=frozenset(Role), unrestricted=True)

    def holds(self, *roles: Role) -> bool:
        return self.unrestricted or not self.roles.isdisjoint(roles)

    @property
    def acts_for_anyone(self) -> bool:
        """Operators and platform systems act for every participant."""
        return self.holds(Role.OPERATOR, Role.PLATFORM)

    def may_see(self, participant_id: str | None) -> bool:
        """Whether this caller may read or change ``participant_id``'s data."""
        if self.acts_for_anyone:
            return True
        return (
            Role.PARTICIPANT in self.roles
            and self.participant_id is not None
            and self.participant_id == participant_id
        )

    def may_act_for(self, participant_id: str | None) -> None:
        """Raise ``NotYourData`` (403) unless this caller may read or change
        ``participant_id``'s data: operators and platform systems may for anyone, a
        participant only for themselves (``sub``). A static participant token names no
        person, so it acts for nobody. ``None`` (nothing found) is nobody's."""
        if not self.may_see(participant_id):
            raise NotYourData(
                "a participant may read and change only their own data", code="not_your_data"
            )


# ---- keys -----------------------------------------------------------------------------


def parse_jwks(raw: bytes, *, algorithms: tuple[str, ...]) -> dict[str | None, jwt.PyJWK]:
    """The signing keys of a JWKS document by ``kid``; symmetric keys and keys of an
    algorithm not allowed are left out (a JWKS is public, so an ``oct`` key in it would
    be a secret everyone knows)."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JwksUnavailable(f"not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksUnavailable('not a JWKS document (no "keys" list)')
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # a key type this library cannot use: others may still be usable
        if key.algorithm_name in algorithms:
            keys[key.key_id] = key
    if not keys:
        raise JwksUnavailable(
            f"no usable signing key (asymmetric keys for: {', '.join(algorithms)})"
        )
    return keys


class JwksKeys:
    """The identity provider's public keys, from a file or a URL, cached.

    Read once at start-up (``load``: a failure stops the service), again when a token
    names an unknown ``kid`` (key rotation) but at most once per
    ``refresh_interval_s``, and again when older than ``max_age_s``. A failed re-read
    keeps the keys known so far (logged): an outage of the identity provider does not
    stop valid tokens from being accepted."""

    def __init__(self, settings: AuthSettings, *, monotonic: Callable[[], float] = time.monotonic):
        if settings.jwks is None:
            raise ValueError("no AUTH_JWKS configured")
        self._location = settings.jwks
        self._is_url = settings.jwks_is_url
        self._algorithms = settings.jwt_algorithms
        self._refresh_interval_s = settings.jwks_refresh_interval_s
        self._max_age_s = settings.jwks_max_age_s
        self._monotonic = monotonic
        self._keys: dict[str | None, jwt.PyJWK] = {}
        # When the keys were last read (their age), and last tried (the rate limit).
        self._loaded_at: float | None = None
        self._tried_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def location(self) -> str:
        return self._location

    async def load(self) -> None:
        """Read the keys now; ``JwksUnavailable`` with the reason when that fails."""
        self._tried_at = self._monotonic()
        raw = await self._read()
        self._keys = parse_jwks(raw, algorithms=self._algorithms)
        self._loaded_at = self._monotonic()
        _log.info("jwks loaded", jwks=self._location, kids=sorted(str(k) for k in self._keys))

    async def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        """The key a token's ``kid`` names; ``None`` if there is none even after a
        permitted re-read. A token without ``kid`` is accepted only while the set holds
        exactly one key."""
        if self._stale() or self._lookup(kid) is None:
            await self._refresh()
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._loaded_at is None or self._monotonic() - self._loaded_at >= self._max_age_s

    async def _refresh(self) -> None:
        async with self._lock:
            # Another request may have re-read (or tried to) while this one waited: a
            # failing identity provider is not asked on every request either.
            if (
                self._tried_at is not None
                and self._monotonic() - self._tried_at < self._refresh_interval_s
            ):
                return
            try:
                await self.load()
            except JwksUnavailable as exc:
                _log.warning("jwks re-read failed; keeping the known keys", reason=str(exc))

    async def _read(self) -> bytes:
        if not self._is_url:
            try:
                raw = await asyncio.to_thread(Path(self._location).read_bytes)
            except OSError as exc:
                raise JwksUnavailable(f"cannot read {self._location}: {exc.strerror}") from None
            if len(raw) > _MAX_JWKS_BYTES:
                raise JwksUnavailable(f"{self._location} is larger than a JWKS can be")
            return raw
        try:
            async with (
                httpx.AsyncClient(timeout=_JWKS_FETCH_TIMEOUT_S, follow_redirects=False) as client,
                client.stream("GET", self._location) as response,
            ):
                if response.status_code != status.HTTP_200_OK:
                    raise JwksUnavailable(f"GET {self._location} answered {response.status_code}")
                raw = b""
                async for chunk in response.aiter_bytes():
                    raw += chunk
                    if len(raw) > _MAX_JWKS_BYTES:
                        raise JwksUnavailable(f"{self._location} is larger than a JWKS can be")
                return raw
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"cannot fetch {self._location}: {exc!r}") from None


# ---- verifying a presented token ------------------------------------------------------


class _InvalidToken(Exception):
    """The presented token proves nothing; the message says why (it is sent back)."""


def role_of(token: str, settings: AuthSettings) -> Role | None:
    presented = token.encode()
    found: Role | None = None
    for role, tokens in settings.tokens.items():
        for candidate in tokens:
            # Compare every token in constant time; never return early on a match, so
            # timing says nothing about which role (if any) a token has.
            if hmac.compare_digest(presented, candidate.get_secret_value().encode()):
                found = role
    return found


def _roles_claim(claims: Mapping[str, Any]) -> frozenset[Role]:
    """The known roles in ``roles`` (a list of names, or one space-separated string);
    names this system does not know are ignored, a claim of another shape is refused."""
    raw = claims.get("roles", [])
    names = raw.split() if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _InvalidToken('the "roles" claim must be a list of role names')
    known = {role.value for role in Role}
    return frozenset(Role(n) for n in names if n in known)


class Authenticator:
    """Turns a request's ``Authorization`` header into a ``Caller`` (one per app)."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.keys = JwksKeys(settings) if settings.jwks is not None else None

    async def start(self) -> None:
        """Check the configuration before the service serves anything:
        ``AuthNotConfigured`` with the reason when it cannot protect the API."""
        settings = self.settings
        if settings.required and settings.open:
            raise AuthNotConfigured(
                "AUTH_REQUIRED is set but neither AUTH_TOKENS nor AUTH_JWKS holds a "
                "credential: refusing to start an open API"
            )
        if settings.required and settings.allow_anonymous:
            raise AuthNotConfigured(
                "AUTH_REQUIRED and AUTH_ALLOW_ANONYMOUS contradict each other: refusing to "
                "start an API that lets anonymous callers in"
            )
        if self.keys is not None:
            try:
                await self.keys.load()
            except JwksUnavailable as exc:
                raise AuthNotConfigured(f"AUTH_JWKS={self.keys.location}: {exc}") from None

    async def caller(self, credentials: HTTPAuthorizationCredentials | None) -> Caller:
        settings = self.settings
        if settings.open:
            return Caller.anonymous_on_open_api()
        if credentials is None or credentials.scheme.lower() != "bearer":
            if settings.allow_anonymous:
                return Caller.anonymous_on_open_api()
            raise _unauthorized("missing bearer token", presented=False)
        token = credentials.credentials
        role = role_of(token, settings)
        if role is not None:
            return Caller(roles=frozenset({role}))
        if self.keys is None or token.count(".") != 2:
            raise _unauthorized("unknown bearer token", presented=True)
        try:
            return await self._verified(token, self.keys)
        except _InvalidToken as exc:
            raise _unauthorized(str(exc), presented=True) from None

    async def _verified(self, token: str, keys: JwksKeys) -> Caller:
        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _InvalidToken("malformed token") from None
        if header.get("alg") not in settings.jwt_algorithms:
            # The reason goes into a response header: nothing of the token is echoed.
            raise _InvalidToken("token algorithm not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _InvalidToken("malformed token (kid)")
        key = await keys.key_for(kid)
        if key is None:
            raise _InvalidToken("token signed by an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=list(settings.jwt_algorithms),
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_s,
                options={"require": _JWT_REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise _InvalidToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise _InvalidToken("token not valid yet") from None
        except jwt.InvalidAudienceError:
            raise _InvalidToken("token for another audience") from None
        except jwt.InvalidIssuerError:
            raise _InvalidToken("token from another issuer") from None
        except jwt.InvalidSignatureError:
            raise _InvalidToken("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _InvalidToken(f"token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise _InvalidToken("malformed token") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise _InvalidToken('the "sub" claim must be a non-empty string')
        return Caller(roles=_roles_claim(claims), participant_id=subject)


def _unauthorized(reason: str, *, presented: bool) -> HTTPException:
    # RFC 6750 section 3: no error code when the request carried no credentials at all.
    challenge = (
        f'Bearer error="invalid_token", error_description="{reason}"' if presented else "Bearer"
    )
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": challenge}
    )


# ---- route dependencies ---------------------------------------------------------------


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The route dependency: who calls (401 when that cannot be established)."""
    authenticator: Authenticator = request.app.state.authenticator
    caller = await authenticator.caller(credentials)
    if caller.participant_id is not None:
        # A person: what their Idempotency-Keys belong to (a refreshed token is the
        # same person), see http_idempotency.
        request.state.caller = caller.participant_id
    return caller


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def require_role(*roles: Role) -> Callable[..., Coroutine[Any, Any, Caller]]:
    """A FastAPI dependency: the caller must hold one of ``roles`` (403 otherwise)."""

    async def check(caller: CurrentCaller) -> Caller:
        if not caller.holds(*roles):
            held = ", ".join(sorted(r.value for r in caller.roles)) or "no role"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {held!r} may not do this (needs one of: "
                f"{', '.join(r.value for r in roles)})",
            )
        return caller

    return check
