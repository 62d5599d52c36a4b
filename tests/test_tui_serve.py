"""`numacon serve` on 127.0.0.1, driven over its websocket like a browser would:
binary frames are the terminal output (fed to a pyte screen), text frames carry
["stdin", keys]."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("textual_serve")
aiohttp = pytest.importorskip("aiohttp")
pyte = pytest.importorskip("pyte")

ROOT = Path(__file__).resolve().parent.parent
W, H = 150, 45


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("numacon serve did not start listening")


@pytest.fixture
def server():
    """The server in a process group of its own: teardown ends it and the app
    processes it spawned, and nothing else."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "serve", "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_listening(port, proc)
        yield port
    finally:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # app processes left in the group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Terminal:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.screen = pyte.Screen(W, H)
        self.stream = pyte.ByteStream(self.screen)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    async def until(self, needle: str, timeout: float = 20.0) -> str:
        t0 = time.monotonic()
        while needle not in self.text():
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise AssertionError(f"{needle!r} never appeared:\n{self.text()}")
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                continue
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.stream.feed(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                              aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"websocket closed before {needle!r}:\n{self.text()}")
        return self.text()

    async def send(self, keys: str) -> None:
        await self.ws.send_str(json.dumps(["stdin", keys]))

    async def settle(self, seconds: float) -> None:
        """Keep reading output for a while (keys are handled asynchronously: a key that
        moves the focus must land before the keys meant for the new focus)."""
        t0 = time.monotonic()
        while (left := seconds - (time.monotonic() - t0)) > 0:
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                return
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.stream.feed(msg.data)


async def test_serve_over_websocket(server):
    # a hard ceiling: a stuck websocket fails the test instead of hanging the suite
    await asyncio.wait_for(drive(server), timeout=90)


async def drive(port: int) -> None:
    url = f"http://127.0.0.1:{port}/ws?width={W}&height={H}"
    timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=timeout) as ws:
            term = Terminal(ws)
            text = await term.until("node 0")
            assert "memcached" in text or "java" in text
            await term.send("?")
            await term.until("numacon help")
            await term.send("\x1b")
            await term.settle(0.5)
            assert "numacon help" not in term.text()
            await term.send(":")
            await term.settle(0.5)
            await term.send("migratepages 103 2 0\r")
            await term.until("migrate_pages done")
            await term.send("q")
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10:
                msg = await ws.receive(timeout=10)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING):
                    break
            else:
                raise AssertionError("the app did not quit on q")
