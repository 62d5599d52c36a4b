"""Commands that write and read machines."""

from __future__ import annotations

from ..machines.snapshot import load, save
from ..units import fmt_size
from .core import Result, command
from .spec import Arg, Spec, text

PATH = Arg("PATH", text, "path")


@command("save", "write an exact snapshot (atomically)", Spec(PATH))
def _save(m, a, bg):
    save(m, a.path)
    return f"saved {a.path}"


@command("load", "load a description or snapshot (replaces the machine)", Spec(PATH))
def _load(m, a, bg):
    new = load(a.path)
    return Result(True, f"loaded {a.path}: machine {new.name} ({len(new.nodes)} nodes, "
                        f"{fmt_size(new.nr_frames * new.page_size)}, era {new.era.name})",
                  machine=new)
