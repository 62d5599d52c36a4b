"""`numacon serve` on 127.0.0.1, driven over its websocket like a browser would:
binary frames are the terminal output (fed to a pyte screen), text frames carry
["stdin", keys]."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
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


def read_token(proc: subprocess.Popen, port: int, timeout: float = 20.0) -> str:
    """The token from the URL the server prints at start; its other output is drained
    on a thread so the pipe never fills."""
    found: queue.Queue = queue.Queue()
    want = re.compile(rf"open http://127\.0\.0\.1:{port}/\?token=([A-Za-z0-9_-]{{43}})$")

    def drain() -> None:
        for line in proc.stdout:
            if m := want.search(line.strip()):
                found.put(m.group(1))
        found.put(None)

    threading.Thread(target=drain, daemon=True).start()
    try:
        token = found.get(timeout=timeout)
    except queue.Empty:
        token = None
    if token is None:
        raise RuntimeError("numacon serve printed no URL with a token")
    return token


@pytest.fixture
def server():
    """The server in a process group of its own: teardown ends it and the app
    processes it spawned, and nothing else. Yields (port, token)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "serve", "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        token = read_token(proc, port)
        wait_listening(port, proc)
        yield port, token
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
    await asyncio.wait_for(drive(*server), timeout=90)


async def drive(port: int, token: str) -> None:
    """The right token and the server's own origin: a full console."""
    url = f"http://127.0.0.1:{port}/ws?width={W}&height={H}&token={token}"
    timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=timeout,
                                      origin=f"http://127.0.0.1:{port}") as ws:
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
            await term.until("73728 of 73728 pages moved")  # its result, in the log
            await term.send("q")
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10:
                msg = await ws.receive(timeout=10)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING):
                    break
            else:
                raise AssertionError("the app did not quit on q")


async def test_serve_refuses_foreign_pages_and_missing_tokens(server):
    """A web page elsewhere (any Origin but the server's own) and a request without the
    run's token get 403 before any app process starts; the first page sets the cookie
    its static files and websocket then use."""
    await asyncio.wait_for(refusals(*server), timeout=60)


async def refusals(port: int, token: str) -> None:
    base = f"http://127.0.0.1:{port}"
    own = base
    ws = f"{base}/ws?width=80&height=24"

    async def ws_status(url: str, origin: str | None, headers=None) -> int:
        try:
            async with session.ws_connect(url, origin=origin, headers=headers):
                return 101
        except aiohttp.WSServerHandshakeError as e:
            return e.status

    async def get(url: str, **kw) -> aiohttp.ClientResponse:
        async with session.get(url, allow_redirects=False, **kw) as r:
            await r.read()
            return r

    async with aiohttp.ClientSession() as session:
        # websockets: a foreign origin, even with the right token; no token; a wrong one
        assert await ws_status(f"{ws}&token={token}", "http://evil.example.com") == 403
        assert await ws_status(f"{ws}&token={token}", f"http://127.0.0.1:{port + 1}") == 403
        assert await ws_status(f"{ws}&token={token}", f"https://127.0.0.1:{port}") == 403
        assert await ws_status(f"{ws}&token={token}", "null") == 403
        assert await ws_status(ws, own) == 403
        assert await ws_status(f"{ws}&token={token[:-1]}x", own) == 403
        assert await ws_status(f"{ws}&token=", own) == 403
        assert await ws_status(
            ws, own, {"Cookie": f"numacon-token-{port}={token}x"}) == 403
        # HTTP: the page, static files
        assert (await get(f"{base}/")).status == 403
        assert (await get(f"{base}/?token=nope")).status == 403
        r = await get(f"{base}/?token={token}", headers={"Origin": "http://evil.example.com"})
        assert r.status == 403
        r = await get(f"{base}/?token={token}")
        assert r.status == 200
        cookie = r.cookies[f"numacon-token-{port}"]
        assert cookie.value == token and cookie["httponly"] and cookie["samesite"] == "Strict"
        assert (await get(f"{base}/static/js/textual.js")).status == 403
        r = await get(f"{base}/static/js/textual.js",
                      headers={"Cookie": f"numacon-token-{port}={token}"})
        assert r.status == 200
        # another name for the host: sent to the server's own address, token kept
        r = await get(f"{base}/?token={token}", headers={"Host": f"localhost:{port}"})
        assert r.status == 307 and r.headers["Location"] == f"{base}/?token={token}"
        body = await (await session.get(f"{base}/?token=nope")).text()
        assert body == "numacon serve: missing or wrong token: open the URL that numacon " \
                       "serve printed\n"
