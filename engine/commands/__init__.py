"""The one text command language: the console's command line, its key bindings, the
command palette, `numacon run` and the tests all call `execute(m, line)`.

Names follow the Linux calls and the numactl tools. Sizes take K/M/G/T suffixes,
addresses are hex, ranges are ADDR..END or ADDR+LEN, node lists are "0-2,5". Each
command declares its arguments once (engine/commands/spec.py): that declaration is
its usage text, its validation and its completion hints. The commands live by topic:
mm (processes, mappings, policies, locks), migration (the calls and the bill),
hotplug, views (Linux-format views, ps, help), runtime (time, jobs, workloads, the
daemon, experiments) and files (save, load)."""

from . import files, hotplug, huge, migration, mm, runtime, views
from .core import COMMANDS, Command, CommandError, Result, command_names, execute
from .runtime import parse_experiment

__all__ = ["COMMANDS", "Command", "CommandError", "Result", "command_names", "execute",
           "parse_experiment", "files", "hotplug", "huge", "migration", "mm", "runtime", "views"]
