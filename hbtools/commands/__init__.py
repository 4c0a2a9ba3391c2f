"""One module per `hbtool` verb; each only parses options and calls into the rooms.

What every verb shares lives here once: the exit status for bad input and loading an
authkeys file with its warnings shown the verb's way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from hbtools.cli import EXIT_USAGE

if TYPE_CHECKING:
    from hbtools.auth import AuthKeys
    from hbtools.knetcrypto import KeyRing

__all__ = ["EXIT_USAGE", "load_corosync_keys", "load_keys"]


def load_keys(path: str, fail: Callable[[str], NoReturn],
              warn: Callable[[str], None] | None) -> AuthKeys:
    """Heartbeat authkeys from `path`; a bad file is `fail(one line)`.

    Heartbeat's own warnings (a file others can read, an unusual method) go to `warn`, or
    are dropped when it is None (the injector's keyfile may well sit world-readable in a
    test directory: the complaint is for the daemon).
    """
    from hbtools.auth import AuthKeys, AuthKeysError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            keys = AuthKeys.load(path)
        except AuthKeysError as exc:
            fail(str(exc))
    if warn is not None:
        for warning in caught:
            warn(f"warning: {warning.message}")
    return keys


def load_corosync_keys(paths: tuple[str, ...], fail: Callable[[str], NoReturn]) -> KeyRing:
    """The ``--corosync-authkey`` files as one key ring; a bad file is `fail(one line)`."""
    from hbtools.knetcrypto import AuthKeyError
    from hbtools.knetcrypto import load_keys as load_ring

    try:
        return load_ring(paths)
    except AuthKeyError as exc:
        fail(str(exc))
