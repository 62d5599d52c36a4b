"""Loading machine descriptions (TOML) and exact snapshots; saving snapshots.
(The snapshot format is a placeholder until the saves issue lands: descriptions only.)"""

from __future__ import annotations

import os
import tomllib


class SaveError(Exception):
    """A file that cannot be loaded or saved: a one-line reason naming the file."""


def load(path: str):
    from .description import DescriptionError
    from .machine import Machine

    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise SaveError(f"{p}: cannot read: {e.strerror}") from None
    try:
        d = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SaveError(f"{p}: not a machine description: {e}") from None
    try:
        return Machine.from_description(d, source=p)
    except DescriptionError as e:
        raise SaveError(str(e)) from None


def save(m, path: str) -> None:
    raise SaveError(f"{os.fspath(path)}: snapshots are not implemented yet")
