"""The Dask backend of `numacon sweep --scheduler tcp://HOST:PORT`: runs go to an
existing dask.distributed cluster through its Client (submit, as_completed); the
same run_sweep loop as the local processes drives it. Imported only when a
scheduler is given (distributed is a heavier import than a local sweep needs).

Every worker needs numacon importable (pip install numacon, or the checkout on its
PYTHONPATH); machines travel as description text or snapshot bytes, scattered once."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

from distributed import Client, as_completed
from distributed.comm import connect as comm_connect
from distributed.comm import parse_address, parse_host_port

from .sweep import MachineRef, SweepError

# distributed logs connection retries and shutdown chatter at ERROR/WARNING; a user
# asked for one line when the scheduler cannot be reached
_NOISY = ("distributed", "distributed.client", "distributed.core", "distributed.comm",
          "tornado")


class DaskBackend:
    """An executor over a dask.distributed Client."""

    def __init__(self, client: Client, *, own: bool = True) -> None:
        self.client = client
        self.own = own  # close the client at the end (not one the caller passed in)
        self.label = f"Dask at {client.scheduler.address}"
        self._futures: list = []

    @property
    def slots(self) -> int:
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001 - the scheduler went away: a display figure only
            return 1

    def ship(self, ref: MachineRef) -> Any:
        # [..]: scatter() takes a dict for a mapping of keys, not one object
        return self.client.scatter([ref.source(inline=True)], hash=False)[0]

    def submit(self, fn: Callable, *args: Any) -> Any:
        fut = self.client.submit(fn, *args, pure=False)
        self._futures.append(fut)
        return fut

    def as_completed(self, futures: list) -> Iterator:
        return iter(as_completed(futures, loop=self.client.loop))

    def close(self, cancel: bool = False) -> None:
        with _quiet():
            if cancel:
                self.client.cancel([f for f in self._futures if not f.done()])
            self._futures = []
        if self.own:
            with _quiet():
                self.client.close()


class _quiet:
    """Raise the noisy loggers to CRITICAL for a block."""

    def __enter__(self) -> None:
        self.saved = [(lg, lg.level) for lg in map(logging.getLogger, _NOISY)]
        for lg, _ in self.saved:
            lg.setLevel(logging.CRITICAL)

    def __exit__(self, *exc: object) -> None:
        for lg, level in self.saved:
            lg.setLevel(level)


def connect(address: str, timeout: float = 10.0) -> DaskBackend:
    """A backend on the scheduler at `address`; SweepError (one line) when it cannot
    be reached within `timeout` seconds, or does not answer as a Dask scheduler."""
    if "://" not in address:
        address = f"tcp://{address}"
    what = "cannot reach the Dask scheduler at"
    try:
        scheme, loc = parse_address(address)
        if scheme in ("tcp", "tls"):
            # a refused or unresolvable address fails now, with the system's reason,
            # where distributed would retry until its timeout
            host, port = parse_host_port(loc)
            socket.create_connection((host, port), timeout=timeout).close()
            what = "no Dask scheduler answers at"
        with _quiet():
            # the handshake alone, before a Client: a Client whose start fails stays
            # half-built and its __del__ prints a traceback at exit
            asyncio.run(_probe(address, timeout))
            client = Client(address, timeout=f"{timeout}s", set_as_default=False)
    except Exception as e:  # noqa: BLE001 - anything here means: no scheduler there
        if isinstance(e, TimeoutError):
            raise SweepError(f"{what} {address}: no answer within {timeout:g} s") from None
        if what.startswith("no Dask") and not isinstance(e, OSError):
            # something listens there but its bytes are not Dask's frames (read as a
            # length, an HTTP reply asks for exabytes): say so, not what that raised
            raise SweepError(f"{what} {address}: something listens there but does not "
                             f"speak Dask's protocol") from None
        raise SweepError(f"{what} {address}: {_reason(e)}") from None
    try:
        with _quiet():  # a scheduler without workers would take the runs and hold them
            client.wait_for_workers(1, timeout=timeout)
    except Exception:  # noqa: BLE001 - TimeoutError, or the scheduler went away
        with _quiet():
            client.close()
        raise SweepError(f"the Dask scheduler at {address} has no workers (none joined "
                         f"within {timeout:g} s): start some with `dask worker "
                         f"{address}`") from None
    return DaskBackend(client)


async def _probe(address: str, timeout: float) -> None:
    async def handshake() -> None:
        comm = await comm_connect(address, timeout=timeout)
        await comm.close()

    # comm_connect's timeout covers the TCP connect, not the handshake: a listener
    # that never answers (an HTTP server waiting for a request) would hold us until it
    # hangs up
    await asyncio.wait_for(handshake(), timeout)


def _reason(e: BaseException) -> str:
    why = getattr(e, "strerror", None) or " ".join(str(e).split()) or type(e).__name__
    return why if len(why) <= 160 else why[:157] + "..."
