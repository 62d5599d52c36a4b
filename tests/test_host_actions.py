"""The live host's actions (engine/host, issue 16): move_pages and migrate_pages through
the real system calls on this test's own pages, answered exactly as the kernel
answers a call the test makes itself; refused without --allow-actions; rehearse, then
act: the simulator's prediction beside what Linux did."""

from __future__ import annotations

import errno
import os
import platform

import pytest
from conftest import OwnPages, kernel_at_least

from engine.host import Host, host_execute
from engine.host import views as host_views
from engine.host.kpage import KPF, pagemap_pfns, read_pagemap
from engine.host.syscalls import SYSCALL_NR
from engine.views import status_counts_text
from tui import cli

PAGE = os.sysconf("SC_PAGE_SIZE")
NR = SYSCALL_NR.get(platform.machine())
ONE_NODE = os.path.isdir("/sys/devices/system/node/node0") and \
    not os.path.isdir("/sys/devices/system/node/node1")

pytestmark = pytest.mark.skipif(
    NR is None or not os.path.isdir("/sys/devices/system/node/node0"),
    reason="needs Linux with NUMA support on x86_64 or aarch64")


class Pages(OwnPages):
    """Four pages of our own (OwnPages) and the test's own move_pages(2) on them."""

    def __init__(self):
        super().__init__()
        self.range = f"{self.base:#x}+{4 * PAGE}"

    def kernel(self, nodes, flags, pid=None):
        """What the host kernel answers: ("errno", e) or (ret, statuses)."""
        return self.syscall_move_pages(os.getpid() if pid is None else pid, self.addrs,
                                       nodes, flags)


@pytest.fixture
def pages():
    p = Pages()
    yield p
    p.close()


@pytest.fixture(scope="module")
def allowed():
    return Host(allow_actions=True)


@pytest.fixture(scope="module")
def readonly():
    return Host()


def test_move_own_pages_to_node_0_as_the_kernel_answers(allowed, pages):
    """move_pages(2) of our own pages to node 0, then a query: the statuses (and
    return value) numacon reports are the kernel's for the same call."""
    pid = os.getpid()
    r = host_execute(allowed, f"move_pages {pid} {pages.range} 0")
    assert r.ok, r.text
    got = (r.value.ret, r.value.status.tolist())
    assert got == pages.kernel([0] * 4, 2)
    assert r.text == f"4 pages: {status_counts_text(r.value.status)}; ret={r.value.ret}"
    q = host_execute(allowed, f"move_pages {pid} {pages.range}")
    assert q.ok and (q.value.ret, q.value.status.tolist()) == pages.kernel(None, 0)
    if kernel_at_least(6, 12):  # mm/migrate.c: written, untouched, zero page, untouched
        assert q.value.status.tolist() == [0, -errno.ENOENT, -errno.EFAULT, -errno.ENOENT]


@pytest.mark.skipif(not ONE_NODE, reason="needs a host with one node")
def test_errors_are_the_kernels(allowed, pages):
    """A node without memory, a missing process: the errno the kernel returns to the
    test's own call, by name and text."""
    pid = os.getpid()
    for line, (nodes, p) in ((f"move_pages {pid} {pages.range} 1", ([1] * 4, pid)),
                             (f"move_pages 4194000 {pages.range} 0", ([0] * 4, 4194000))):
        want = pages.kernel(nodes, 2, pid=p)
        assert want[0] == "errno"
        r = host_execute(allowed, line)
        assert not r.ok
        assert r.text == f"error: {errno.errorcode[want[1]]}: {os.strerror(want[1])}"
    r = host_execute(allowed, f"migratepages {pid} 0 0")
    assert r.ok and r.text == "0 page(s) not moved"


def test_actions_are_refused_without_allow_actions(readonly, pages, capsys):
    pid = os.getpid()
    before = pages.kernel(None, 0)
    for line in (f"move_pages {pid} {pages.range} 0", f"move_pages {pid} all 0 --all",
                 f"migratepages {pid} 0 0", f"migrate_pages {pid} 0 0"):
        r = host_execute(readonly, line)
        assert not r.ok and len(r.text.splitlines()) == 1, line
        assert "refused: the host is open read-only (pass --allow-actions" in r.text
    assert pages.kernel(None, 0) == before
    # a query changes nothing: allowed
    assert host_execute(readonly, f"move_pages {pid} {pages.range}").ok
    # the command line: read-only is the default, an action fails with one line
    rc = cli.main(["run", "--host", "-c", f"move_pages {pid} {pages.range} 0"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == "" and len(err.splitlines()) == 1 and "refused" in err
    rc = cli.main(["run", "--host", "--read-only", "-c", f"migratepages {pid} 0 0"])
    assert rc == 1 and "refused" in capsys.readouterr().err


def test_rehearse_then_act_on_own_process(pages, capsys):
    """The simulator (this host captured, this process replayed) predicts, Linux acts,
    the text shows both; on these pages the model and Linux agree entry by entry."""
    pid = os.getpid()
    rc = cli.main(["run", "--host", "--allow-actions", "-c",
                   f"rehearse move_pages {pid} {pages.range} 0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == (f"rehearse move_pages on pid {pid} ({open('/proc/self/comm').read().strip()}"
                        f"): 4 pages -> node(s) 0, MPOL_MF_MOVE")
    assert lines[1].startswith("simulator: this host captured at ")
    head = next(i for i, ln in enumerate(lines) if ln.split() == ["predicted", "actual"])
    rows = {ln[:ln.rindex(" ", 0, len(ln) - 14)].strip(): ln.split()[-2:]
            for ln in lines[head + 1:] if ln and not ln.startswith(("status", "matched",
                                                                     "differs", "time:",
                                                                     "  note"))}
    assert rows["pages moved"] == ["0", "0"]
    assert rows["already in place"] == ["1", "1"]
    assert rows["return value"] == ["0", "0"]
    if kernel_at_least(6, 12):
        fault = next(k for k in rows if k.startswith("-EFAULT"))
        absent = next(k for k in rows if k.startswith("-ENOENT"))
        assert rows[fault] == ["1", "1"] and rows[absent] == ["2", "2"]
        assert "status entries that differ from the prediction: 0 of 4" in lines
        assert "matched: Linux did what the simulator predicted" in lines
    assert lines[-1].startswith("time: the call took ")


def test_rehearse_without_allow_actions_predicts_only(readonly):
    pid = os.getpid()
    r = host_execute(readonly, f"rehearse migratepages {pid} 0 0")
    assert r.ok, r.text
    assert r.text.splitlines()[0].startswith(f"rehearse migrate_pages on pid {pid}")
    assert r.text.splitlines()[-1] == ("actual: not run (read-only: pass --allow-actions to "
                                       "apply it to the host)")
    assert r.value.actual is None and r.value.bill.ret == 0
    # nothing to replay: one line, before any capture
    r = host_execute(readonly, "rehearse move_pages 4194000 0x1000 0")
    assert not r.ok and r.text == "error: ESRCH: no process 4194000"


def test_numacon_host_arguments(capsys):
    """`numacon host` opens the console (tests/test_host_console.py drives it); its
    flags are run --host's, read-only the default, the two modes exclusive."""
    assert cli.main(["host", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--allow-actions" in out and "--read-only" in out and "rehearsed" in out
    assert cli.main(["host", "--read-only", "--allow-actions"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert cli.main(["run", "--host", "somefile.toml", "-c", "ps"]) == 2
    assert "give no MACHINE" in capsys.readouterr().err
    assert cli.main(["run", "--allow-actions", "-c", "ps"]) == 2
    assert "--allow-actions goes with --host" in capsys.readouterr().err
    assert cli.main(["run", "--host", "-c", "hardware; numastat"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("available: ") and "numa_hit" in out


def test_the_inspector_names_the_process_mapping_a_frame(readonly, pages):
    """A real frame of this test's own written page: its class and kpageflags word
    (/proc/kpageflags), map count (/proc/kpagecount), and the process and address that
    map it, found through the pagemaps; as root (PFNs and kpageflags need
    CAP_SYS_ADMIN) - else the inspector says the owner is hidden."""
    h = readonly
    pid = os.getpid()
    h.read_vmas(pid)
    visible = h.pfns_visible and h.frames is not None and h.frames.available
    pfn = int(pagemap_pfns(read_pagemap("/", pid, pages.base, 1, PAGE))[0])
    if not visible:
        assert pfn <= 0 and "hidden" in dict(host_views.describe_frame(h, 4096)).get(
            "owner", "hidden")
        pytest.skip("PFNs and /proc/kpageflags need root (CAP_SYS_ADMIN)")
    # the search reads pagemaps largest VMA first: a budget that reaches ours on a
    # host busy with other large processes
    assert h.owner_of(pfn, budget=1 << 28) == (pid, pages.base)
    d = dict(host_views.describe_frame(h, pfn, owner=lambda f: h.owner_of(f, 1 << 28)))
    assert d["owner"] == f"pid {pid} {open('/proc/self/comm').read().strip()}"
    assert d["address"] == f"{pages.base:#x}" and d["mapcount"] == "1"
    assert d["class"] == "anon" and "anon" in d["flags"].split(",")
    assert int(d["kpageflags"], 16) >> KPF["anon"] & 1  # the word itself (its LRU bits
    #                                                     may change as the page ages)
