"""Who is acting: the actor recorded in every audit event.

Resolution order: an explicit ``actor=`` argument (per call), else the
registry's default (``Registry(actor=...)``), else the first answer of the
resolver chain:

1. the environment variable ``MODELREG_ACTOR``;
2. git's ``user.email`` (``git config user.email``, as seen from the current directory);
3. the operating-system user name.

Replace the chain with :func:`set_actor_resolvers` (for example with a function
reading your SSO token's subject).

This is *identification, not authentication*. An embeddable library runs with
the caller's permissions and cannot prove who the caller is: anyone who can
write to the registry's storage can write any actor name. The storage
permissions are the security boundary (see ``docs/security.md``).
"""

from __future__ import annotations

import getpass
import os
import subprocess
import threading
from collections.abc import Callable, Sequence

__all__ = [
    "DEFAULT_RESOLVERS",
    "ActorResolver",
    "env_actor",
    "get_actor_resolvers",
    "git_actor",
    "os_actor",
    "resolve_actor",
    "set_actor_resolvers",
]

ActorResolver = Callable[[], "str | None"]
"""Returns an actor name, or None to let the next resolver answer."""


def env_actor() -> str | None:
    """``$MODELREG_ACTOR``, if set and not blank."""
    value = os.environ.get("MODELREG_ACTOR", "")
    return value.strip() or None


_git_cache: dict[str, str | None] = {}
_git_lock = threading.Lock()


def git_actor() -> str | None:
    """git's ``user.email`` as configured for the current directory (cached per directory)."""
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    with _git_lock:
        if cwd in _git_cache:
            return _git_cache[cwd]
    try:
        out = subprocess.run(
            ["git", "config", "--get", "user.email"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        email = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        email = ""
    value = email or None
    with _git_lock:
        _git_cache[cwd] = value
    return value


def os_actor() -> str | None:
    """The operating-system user name."""
    try:
        return getpass.getuser() or None
    except Exception:
        return None


DEFAULT_RESOLVERS: tuple[ActorResolver, ...] = (env_actor, git_actor, os_actor)
_resolvers: tuple[ActorResolver, ...] = DEFAULT_RESOLVERS


def set_actor_resolvers(resolvers: Sequence[ActorResolver] | None) -> None:
    """Replace the resolver chain (process-wide); ``None`` restores :data:`DEFAULT_RESOLVERS`."""
    global _resolvers
    if resolvers is None:
        _resolvers = DEFAULT_RESOLVERS
        return
    chain = tuple(resolvers)
    if not all(callable(r) for r in chain):
        from ..errors import InvalidInputError

        raise InvalidInputError("actor resolvers must be callables returning a name or None")
    _resolvers = chain


def get_actor_resolvers() -> tuple[ActorResolver, ...]:
    return _resolvers


def resolve_actor(explicit: str | None = None) -> str:
    """``explicit`` if given, else the first resolver that answers, else ``"unknown"``."""
    if explicit is not None and str(explicit).strip():
        return str(explicit).strip()
    for resolver in _resolvers:
        value = resolver()
        if value is not None and str(value).strip():
            return str(value).strip()
    return "unknown"
