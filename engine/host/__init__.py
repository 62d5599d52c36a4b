"""The live host: numacon on the machine it runs on, read from what Linux exposes and
acted on through the real system calls (issue 16).

- host.Host: the host offering the Machine's read-side names (topology, processes,
  Linux's views), a refresh policy (refresh.py), a frame map (kpage.py), and the action
  backend (syscalls.py: move_pages/migrate_pages, refused unless allowed)
- views: the read-only view API of engine/views/ over a Host (views_for(m) picks)
- commands: the command language on the host (same specs, same execute)
- rehearse: capture the host, run the call in the simulator with its bill, run it on
  the host, compare"""

from .commands import HOST_COMMANDS, HOST_OFFERED, host_execute
from .host import Host
from .rehearse import Rehearsal, RehearsalError, act, rehearse
from .syscalls import ActionRefused

__all__ = ["ActionRefused", "HOST_COMMANDS", "HOST_OFFERED", "Host", "Rehearsal", "RehearsalError", "act",
           "host_execute", "rehearse"]
