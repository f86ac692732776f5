"""Bearer-token authentication with roles (CONTRACT.md "Security").

A missing or unknown token is 401; a known token without the needed role is 403. With
no tokens configured at all the service runs open (local development only) and warns
about it at start-up.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .settings import AuthSettings, Role

_bearer = HTTPBearer(auto_error=False, description="A token issued for one role.")


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


def require_role(*roles: Role) -> Callable[..., Coroutine[Any, Any, Role | None]]:
    """A FastAPI dependency: the caller must hold one of ``roles``."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Role | None:
        settings: AuthSettings = request.app.state.auth_settings
        if settings.open:
            return None
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        role = role_of(credentials.credentials, settings)
        if role is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {role.value!r} may not do this (needs one of: "
                f"{', '.join(r.value for r in roles)})",
            )
        return role

    return check
