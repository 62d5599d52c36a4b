"""`Machine`: the facade with the public API of shared/design/engine-api.md.

It is the kernel state (`engine.mm.state.Kernel`) plus the runtime subsystems,
declared here as typed attributes, and a thin method per call: coerce the
arguments, call the mm/ or runtime/ function that does the work, tell listeners.
Every rule lives in those modules; nothing here decides what Linux would do."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable

import numpy as np

from .constants import (
    EFAULT,
    EINTR,
    EINVAL,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    oserror,
)
from .heap import trim
from .machines.description import build_machine
from .machines.presets import DEFAULT_DESCRIPTION
from .mm import check as mm_check
from .mm import drivers as mm_drivers
from .mm import fault as mm_fault
from .mm import huge_memory, hugetlb, memory, mempolicy, mlock, mmap, move_pages, procfs, task
from .mm import madvise as mm_madvise
from .mm import memory_hotplug as hotplug
from .mm.era import Era, get_era
from .mm.mm_types import VMA, Process
from .mm.state import Kernel, drive, int_arg
from .runtime import access, bill
from .runtime.automigrate import Daemons
from .runtime.bill import Bill, Bills
from .runtime.clock import ClockController
from .runtime.jobs import Job, run_jobs
from .runtime.moves import RECORDED, MoveBook, undo_gen
from .runtime.timeline import Timeline
from .runtime.workload import Workloads
from .runtime.workload import create as create_workload

InvariantError = mm_check.InvariantError

# attributes that belong to the running program, not to the machine: a clone or a
# snapshot starts them afresh
RUNTIME = ("jobs", "finished_jobs", "listeners", "clockctl", "timeline", "workloads",
           "daemons", "bills", "moves")


class Machine(Kernel):
    """A NUMA machine and its kernel. Build one with Machine.default(),
    Machine.from_description(d) or engine.load(path)."""

    job_batch = 512  # Linux migrates in batches of 512 base pages
    # jobs whose generators yield once their argument checks are done
    CHECKED_JOBS = ("move_pages", "migrate_pages", "mbind", "offline", "offline_block",
                    "undo")

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[Job] = []
        self.finished_jobs: list[Job] = []
        self.listeners: list[Callable[[Machine], None]] = []
        self.clockctl = ClockController()
        self.timeline = Timeline()
        self.workloads = Workloads()
        self.daemons = Daemons()
        self.bills = Bills()
        self.moves = MoveBook()  # what migration jobs moved: their results, and undo

    # ------------------------------------------------------------ construction
    @classmethod
    def default(cls) -> Machine:
        """The embedded default machine (no file needed)."""
        return cls.from_description(DEFAULT_DESCRIPTION)

    @classmethod
    def from_description(cls, d: dict, *, source: str = "<description>") -> Machine:
        m = build_machine(cls(), d, source=source)
        trim()  # the build's temporaries (freed by now): back to the system, not the heap
        return m

    def clone(self) -> Machine:
        """A deep copy of the machine's state with fresh runtime subsystems (an
        experiment must not disturb the machine it starts from)."""
        c = Machine()
        state = {k: v for k, v in vars(self).items() if k not in RUNTIME}
        vars(c).update(copy.deepcopy(state))
        return c

    # ------------------------------------------------------------ topology
    @Kernel.era.setter
    def era(self, name) -> None:
        if not isinstance(name, (str, Era)):
            raise TypeError(f"era must be an era name, not {type(name).__name__}")
        Kernel.era.fset(self, name if isinstance(name, Era) else get_era(name))

    @property
    def thp(self) -> str:
        """/sys/kernel/mm/transparent_hugepage/enabled: "always", "madvise" (the
        default here, as Ubuntu ships it; upstream's Kconfig default is always) or
        "never". Eras before 2.6.38 have no THP: reading gives "never", setting
        raises ENOENT (the sysfs file does not exist)."""
        return self.thp_mode if self.era.has_thp else "never"

    @thp.setter
    def thp(self, mode) -> None:
        huge_memory.set_thp(self, mode)
        self._changed()

    def madvise(self, pid: int, addr: int, length: int, advice: int) -> None:
        """madvise(2) with MADV_HUGEPAGE or MADV_NOHUGEPAGE (EINVAL for other advice,
        an unaligned address, or an era without THP; ENOMEM over a hole)."""
        mm_madvise.madvise(self, self.user(pid), _int(addr, "addr"),
                           _int(length, "length"), _int(advice, "advice"))
        self._changed()

    def set_nr_hugepages(self, node: int, n: int, *, size_kb: int | None = None,
                         caller=None) -> int:
        """echo n > /sys/devices/system/node/nodeN/hugepages/hugepages-2048kB/
        nr_hugepages (root's): returns the pool's size after (fewer when the node has
        not so many free aligned blocks, as Linux). ENOENT for a node without memory
        or a size with no hstate, EINVAL for a negative count or more than the node
        could hold. size_kb: the pool's page size (default 2048; 1048576: the 1 GiB
        pool, hugepages-1048576kB)."""
        self.require_admin(caller, "hugepages")
        order = hugetlb.hstate_order(self, _opt_int(size_kb, "size_kb"))
        got = hugetlb.set_nr_hugepages(self, _int(node, "node"), _int(n, "n"), order)
        self._changed()
        return got

    def set_nr_overcommit_hugepages(self, n: int, *, caller=None) -> None:
        """echo n > /proc/sys/vm/nr_overcommit_hugepages (root's): surplus huge pages
        MAP_HUGETLB faults may take from the buddy allocator when the pools are empty
        (2 MiB pages only: gigantic pages are never surplus); EINVAL for a negative
        count."""
        self.require_admin(caller, "hugepages")
        hugetlb.set_nr_overcommit_hugepages(self, _int(n, "n"))
        self._changed()

    def hugepages_surplus(self, node: int, size_kb: int | None = None) -> int:
        """HugePages_Surp of a node: its huge pages in use beyond nr_hugepages (of the
        2 MiB pool, or of the pool of size_kb)."""
        order = hugetlb.hstate_order(self, _opt_int(size_kb, "size_kb"))
        return hugetlb.surplus_count(self, self.node(_int(node, "node")).id, order)

    def hugepages_reserved(self, size_kb: int | None = None) -> int:
        """HugePages_Rsvd (/proc/meminfo; /sys/kernel/mm/hugepages/hugepages-NNNkB/
        resv_hugepages): huge pages (2 MiB, or of size_kb) MAP_HUGETLB mappings reserved
        and have not faulted yet."""
        return hugetlb.resv_huge_pages(self, hugetlb.hstate_order(self, _opt_int(size_kb,
                                                                                 "size_kb")))

    def hugepages(self, node: int, size_kb: int | None = None) -> tuple[int, int]:
        """(HugePages_Total, HugePages_Free) of a node's hugetlb pool (2 MiB pages, or
        those of size_kb)."""
        order = hugetlb.hstate_order(self, _opt_int(size_kb, "size_kb"))
        return hugetlb.pool_counts(self, self.node(_int(node, "node")).id, order)

    def sysfs_hugepages(self, node: int) -> dict[str, dict[str, int]]:
        """/sys/devices/system/node/nodeN/hugepages/hugepages-*kB/{nr,free,surplus}_
        hugepages, per huge page size."""
        return procfs.node_hugepages(self, self.node(_int(node, "node")).id)

    @property
    def drivers(self) -> list[str]:
        return list(self.drivers_map)

    def set_era(self, name, *, caller=None) -> None:
        """`m.era = name` as an administrator act: a caller without CAP_SYS_ADMIN gets
        EPERM (booting another kernel is root's)."""
        self.require_admin(caller, "era")
        self.era = name
        self._changed()

    def set_migrate_hook(self, driver: str, enabled: bool, *, caller=None) -> None:
        self.require_admin(caller, "hook")
        d = self.driver(driver)
        enabled = _bool(enabled, "enabled")
        if not d.pfnmap:
            raise oserror(EINVAL, f"driver {driver} pins pages; it has no vm_ops->migrate")
        d.has_hook = True
        d.hook_enabled = bool(enabled)
        self._changed()

    # ------------------------------------------------------------ processes
    @property
    def pids(self) -> list[int]:
        return sorted(self.procs)

    def process(self, pid: int) -> Process:
        return self.task(pid)

    def spawn(self, name: str, uid: int = 0, node: int = 0, mems_allowed=None, *,
              pid: int | None = None, kthread: bool = False) -> int:
        pid = task.spawn(self, _str(name, "name"), _int(uid, "uid"), _int(node, "node"),
                         mems_allowed, pid=None if pid is None else _int(pid, "pid"),
                         kthread=_bool(kthread, "kthread"))
        self._changed()
        return pid

    def kill(self, pid: int) -> None:
        task.exit_task(self, self.task(pid))
        self._changed()

    def fork(self, pid: int, *, caller=None) -> int:
        """fork() of process pid (the caller itself: caller= another process is EPERM);
        returns the child's pid. Private pages are shared copy-on-write."""
        child = task.fork(self, pid, caller=caller)
        self._changed()
        return child

    def setrlimit(self, pid: int, resource: str, soft: int, hard: int | None = None, *,
                  caller=None) -> None:
        """prlimit(pid, RLIMIT_MEMLOCK, {soft, hard}) in bytes (RLIM_INFINITY: none);
        hard None keeps the hard limit."""
        task.setrlimit(self, pid, resource, soft, hard, caller=caller)
        self._changed()

    def getrlimit(self, pid: int, resource: str = "memlock", *, caller=None
                  ) -> tuple[int, int]:
        """(soft, hard) of a resource limit, in bytes."""
        return task.getrlimit(self, pid, resource, caller=caller)

    def mmap(self, pid: int, length: int, prot: int = PROT_READ | PROT_WRITE,
             flags: int = MAP_PRIVATE | MAP_ANONYMOUS, *, file: str | None = None,
             driver: str | None = None) -> int:
        addr = mmap.do_mmap(self, self.user(pid), _int(length, "length"), _int(prot, "prot"),
                            _int(flags, "flags"), _opt_str(file, "file"),
                            _opt_str(driver, "driver"))
        self._changed()
        return addr

    def munmap(self, pid: int, addr: int, length: int) -> None:
        mmap.do_munmap(self, self.user(pid), _int(addr, "addr"), _int(length, "length"))
        self._changed()

    def touch(self, pid: int, addr: int, length: int, *, write: bool = True,
              node: int | None = None) -> None:
        """Fault in / access [addr, addr+length) from a CPU on `node` (default: the
        process's node). An address outside every VMA is EFAULT (a SIGSEGV)."""
        mm_fault.touch(self, self.user(pid), _int(addr, "addr"), _int(length, "length"),
                       write=_bool(write, "write"),
                       node=None if node is None else _int(node, "node"))
        self._changed()

    def read(self, pid: int, addr: int) -> int:
        """The content of the page at addr (0 for a page never written), without
        faulting anything in."""
        p = self.user(pid)
        addr = _int(addr, "addr")
        v = p.find_vma(addr)
        if v is None:
            raise oserror(EFAULT, f"read: {addr:#x} is not mapped")
        off = np.array([(addr - v.start) >> self.page_shift])
        pfn = int(v.ptes(off)[0])
        if pfn >= 0:
            return int(self.f.content[pfn])
        if v.backing is not None and not v.pfnmap:
            i = v.pgoff + off
            return int(v.backing.expects(i)[0]) if i[0] < v.backing.npages else 0
        return 0

    # ------------------------------------------------------------ Linux calls
    def move_pages(self, pid: int, pages, nodes=None, flags: int = 0, *, caller=None):
        return self.run(move_pages.move_pages_gen(self, pid, pages, nodes, flags,
                                                  caller=caller))

    # maxnode: the nodemask's size in bits as Linux reads it (None: large enough)
    def migrate_pages(self, pid: int, old_nodes, new_nodes, *, caller=None,
                      maxnode: int | None = None) -> int:
        return self.run(mempolicy.migrate_pages_gen(self, pid, old_nodes, new_nodes,
                                                    caller=caller, maxnode=maxnode))

    def mbind(self, pid: int, addr: int, length: int, mode: int, nodemask=(), flags: int = 0,
              *, caller=None, maxnode: int | None = None) -> None:
        self.run(self._mbind_gen(pid, addr, length, mode, nodemask, flags, caller=caller,
                                 maxnode=maxnode))

    def _mbind_gen(self, pid, addr, length, mode, nodemask=(), flags=0, **kw):
        return mempolicy.mbind_gen(self, pid, _int(addr, "addr"), _int(length, "length"),
                                   _int(mode, "mode"), nodemask, _int(flags, "flags"), **kw)

    def set_mempolicy(self, pid: int, mode: int, nodemask=(), *, caller=None,
                      maxnode: int | None = None) -> None:
        mempolicy.set_mempolicy(self, pid, _int(mode, "mode"), nodemask, caller=caller,
                                maxnode=maxnode)
        self._changed()

    def get_mempolicy(self, pid: int, addr: int | None = None, flags: int = 0, *,
                      caller=None, maxnode: int | None = None):
        return mempolicy.get_mempolicy(self, pid, None if addr is None else _int(addr, "addr"),
                                       _int(flags, "flags"), caller=caller, maxnode=maxnode)

    def mlock(self, pid: int, addr: int, length: int) -> None:
        mlock.do_mlock(self, self.user(pid), _int(addr, "addr"), _int(length, "length"),
                       lock=True)
        self._changed()

    def mlock2(self, pid: int, addr: int, length: int, flags: int = 0) -> None:
        """mlock2(): flags 0 or MLOCK_ONFAULT (lock pages as they fault)."""
        mlock.do_mlock2(self, self.user(pid), _int(addr, "addr"), _int(length, "length"),
                        _int(flags, "flags"))
        self._changed()

    def munlock(self, pid: int, addr: int, length: int) -> None:
        mlock.do_mlock(self, self.user(pid), _int(addr, "addr"), _int(length, "length"),
                       lock=False)
        self._changed()

    def mlockall(self, pid: int, flags: int) -> None:
        mlock.do_mlockall(self, self.user(pid), _int(flags, "flags"))
        self._changed()

    def munlockall(self, pid: int) -> None:
        mlock.do_munlockall(self, self.user(pid))
        self._changed()

    def pin(self, pid: int, addr: int, length: int, driver: str | None = None) -> int:
        """Long-term pin (an RDMA memory registration) of a range: its pages can no
        longer migrate. Returns the number of pages pinned."""
        n = mm_drivers.pin_range(self, self.user(pid), _int(addr, "addr"),
                                 _int(length, "length"),
                                 self._pin_driver(_opt_str(driver, "driver")))
        self._changed()
        return n

    def unpin(self, pid: int, addr: int, length: int, driver: str | None = None) -> int:
        n = mm_drivers.unpin_range(self, self.user(pid), _int(addr, "addr"),
                                   _int(length, "length"),
                                   self._pin_driver(_opt_str(driver, "driver")))
        self._changed()
        return n

    def _pin_driver(self, name):
        if name is None:
            ds = [d for d in self.drivers_map.values() if not d.pfnmap]
            if not ds:
                raise oserror(EINVAL, "no pinning (rdma) driver on this machine")
            return ds[0]
        d = self.driver(name)
        if d.pfnmap:
            raise oserror(EINVAL, f"driver {name} maps a region; it does not pin pages")
        return d

    def vma_migratable(self, v: VMA, path: str) -> bool:
        return move_pages.vma_migratable(self, v, path)

    def undo(self) -> dict:
        """Move every page the last migration job moved back to the node it came from
        (engine/runtime/moves.py); recorded itself, so a second undo redoes."""
        last = self.moves.last
        with self.moves.recording(self, "undo", (last,)):
            return self.run(undo_gen(self, last))

    # ------------------------------------------------------------ hot-remove / hot-add
    def offline(self, node: int, zone: str, *, dry_run: bool = False, caller=None) -> dict:
        """Offline every online block of a zone; returns what moved. dry_run: the
        rehearsal, changing nothing. An administrator act (caller: uid 0 only)."""
        self.require_admin(caller, "offline")
        if _bool(dry_run, "dry_run"):
            return self.offline_plan(node, zone)
        return self.run(self._offline_gen(node, zone))

    def _offline_gen(self, node, zone, **kw):
        return hotplug.offline_zone_gen(self, _int(node, "node"), _str(zone, "zone"), **kw)

    def offline_plan(self, node: int, zone: str, *, chunk: int | None = None) -> dict:
        """The rehearsal (`offline --dry-run`); chunk: predict a job of that batch."""
        return hotplug.offline_plan(self, _int(node, "node"), _str(zone, "zone"),
                                    chunk=_batch(chunk, "chunk"))

    def online(self, node: int, zone: str, *, caller=None) -> int:
        self.require_admin(caller, "online")
        n = hotplug.online_zone(self, _int(node, "node"), _str(zone, "zone"))
        self._changed()
        return n

    def offline_block(self, index: int, *, caller=None) -> dict:
        self.require_admin(caller, "offline")
        return self.run(self._offline_block_gen(index))

    def _offline_block_gen(self, index, **kw):
        return hotplug.offline_block_gen(self, _int(index, "index"), **kw)

    def online_block(self, index: int, how: str = "online", *, caller=None) -> int:
        self.require_admin(caller, "online")
        n = hotplug.online_block(self, _int(index, "index"), _str(how, "how"))
        self._changed()
        return n

    def blocks(self) -> list[dict]:
        """/sys/devices/system/memory/memoryN: index, state, node, zone, valid_zones,
        removable (and start_pfn, pages, isolated)."""
        return hotplug.blocks(self)

    # ------------------------------------------------------------ views
    def numa_maps(self, pid: int) -> str:
        return procfs.numa_maps(self, self.task(pid))

    def numastat(self) -> str:
        return procfs.numastat(self)

    def zoneinfo(self) -> str:
        return procfs.zoneinfo(self)

    def vmstat(self) -> dict:
        return procfs.vmstat(self)

    def meminfo(self, node: int) -> str:
        return procfs.node_meminfo(self, self.node(_int(node, "node")).id)

    def hardware(self) -> str:
        return procfs.numactl_hardware(self)

    def node_numastat(self, node: int) -> dict:
        return procfs.node_numastat(self, self.node(node).id)

    # ------------------------------------------------------------ jobs
    def run(self, gen):
        """Drive an operation's generator to completion (the synchronous call)."""
        try:
            return drive(gen)
        finally:
            self._changed()

    def job_generators(self) -> dict[str, Callable]:
        """name -> factory(*args, chunk=, job=, **kw) of every operation that can run
        as a job."""
        return {
            "move_pages": lambda *a, **k: move_pages.move_pages_gen(self, *a, **k),
            "migrate_pages": lambda *a, **k: mempolicy.migrate_pages_gen(self, *a, **k),
            "mbind": self._mbind_gen,
            "offline": self._admin_job("offline", lambda _m, *a, **k:
                                       self._offline_gen(*a, **k)),
            "offline_block": self._admin_job("offline", lambda _m, *a, **k:
                                             self._offline_block_gen(*a, **k)),
            "workload": self._workload_job,
            "daemon": self._daemon_job,
            "bill": self._bill_job,
            "undo": lambda rec=None, **k: undo_gen(self, rec if rec is not None
                                                   else self.moves.last, **k),
        }

    def _admin_job(self, what: str, gen_fn: Callable) -> Callable:
        """A job of an administrator act: the caller's CAP_SYS_ADMIN is checked when the
        job is made (m.start() raises EPERM)."""
        def make(*a, caller=None, **k):
            self.require_admin(caller, what)
            return gen_fn(self, *a, **k)
        return make

    def _workload_job(self, pid: int, addr: int | None = None, length: int | None = None,
                      *, chunk=None, job=None, watch=(), **kw):
        """`m.start("workload", pid, [addr, length], pattern=..., threads=...)`."""
        kinds = access.watch_kinds(watch)  # checked before create() maps anything
        wl = create_workload(self, self.workloads, pid, addr, length, **kw)
        if kinds:
            access.watch(self, wl, kinds)
        if job is not None:  # visible before the first step (commands, the UI)
            job.owner, wl.job = wl, job
            job.total = 0 if wl.loop else wl.total_ticks
        return wl.run_gen(job)

    def _daemon_job(self, pid: int, *, chunk=None, job=None, **kw):
        """`m.start("daemon", pid, source="hint", rate_mbps=512, ...)`."""
        d = self.daemons.create(self, self.workloads, pid, **kw)
        if job is not None:
            job.owner = d
        return d.run_gen(chunk=chunk, job=job)

    def _bill_job(self, b: Bill | None = None, *, chunk=None, job=None):
        """`m.start("bill", bill)` makes the billed call (default: the last bill), in
        the bill's own chunks (a job's batch would change what the bill predicted)."""
        b = b if b is not None else self.bills.last
        if b is None:
            raise oserror(EINVAL, "bill: no bill to run (make one with --dry-run first)")
        return b.run_gen(self, self.job_generators()[b.kind], job=job)

    def _job(self, name: str, args, kw, batch: int | None) -> Job:
        gens = self.job_generators()
        gen_fn = gens.get(_str(name, "job name"))
        batch = _batch(batch, "batch")
        if gen_fn is None:
            raise oserror(EINVAL, f"start: no job {name!r} (jobs: {', '.join(sorted(gens))})")
        job = Job(self, name, None)
        job.gen = gen_fn(*args, chunk=batch or self.job_batch, job=job, **kw)
        if name in RECORDED:  # its moves make its result and what `undo` reverses
            if name == "undo" and not args:
                args = (self.moves.last,)
            rec = self.moves.begin(self, name, args, kw, job.id)
            job.gen = self.moves.wrap(self, rec, job.gen)
        self.jobs.append(job)
        return job

    def start(self, name: str, *args, batch: int | None = None, **kw) -> Job:
        """Start a long operation as an asyncio job (stepped by the running event loop,
        or by run_jobs() without one)."""
        job = self._job(name, args, kw, batch)
        if name in self.CHECKED_JOBS:
            # run the call's argument checks now, as the syscall would before any work:
            # a bad call raises here instead of failing after "job started"
            job.step()
            if job.state == "failed" and job.steps == 0:
                if job in self.finished_jobs:
                    self.finished_jobs.remove(job)
                raise job.error
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            job._task = loop.create_task(job.run())
        self._changed()
        return job

    def start_sync(self, name: str, *args, batch: int | None = None, **kw) -> Job:
        """A job that no asyncio task drives: run_jobs() steps it (scripts, experiments,
        and tests that want the same interleaving every time)."""
        return self._job(name, args, kw, batch)

    def run_jobs(self, jobs=None, *, max_steps: int | None = None) -> int:
        """Step jobs round-robin without an event loop (deterministic)."""
        return run_jobs(self.jobs if jobs is None else jobs,
                        max_steps=None if max_steps is None else _int(max_steps, "max_steps"))

    def cancel_error(self, job: Job) -> OSError:
        return oserror(EINTR, f"{job.name}: cancelled after {job.done} of {job.total} pages")

    def job_stepped(self, job: Job) -> None:
        # a batch put back or moved the pages it held: shared anonymous memory that
        # only they kept alive goes now
        memory.release_orphan_shmem(self)
        self.timeline.sample(self)  # every batch boundary is a point of the timeline

    def job_finished(self, job: Job) -> None:
        memory.release_orphan_shmem(self)
        if job in self.jobs:
            self.jobs.remove(job)
        self.finished_jobs.append(job)
        del self.finished_jobs[:-50]
        self._changed()

    def note_moved(self, src: np.ndarray, dst: np.ndarray, driver: str | None = None) -> None:
        rec = self.moves.active
        if rec is not None:
            rec.note_moved(src, dst, driver)

    def note_failed(self, pfns: np.ndarray, codes: np.ndarray) -> None:
        rec = self.moves.active
        if rec is not None:
            rec.note_failed(pfns, codes)

    def _changed(self) -> None:
        self.timeline.sample(self)
        for cb in self.listeners:
            cb(self)

    # ------------------------------------------------------------ the bill
    def migration_bill(self, kind: str, *args, **kw) -> Bill:
        """The dry run of a migration: what would move, fail and cost (engine/runtime/
        bill.py). The bill is kept as the last one (`bill run` makes it)."""
        b = bill.migration_bill(self, kind, *args, **kw)
        self.bills.last = b
        return b

    def run_bill(self, b: Bill | None = None):
        """Make the billed call (default: the last bill) and record the outcome in the
        bill; returns the call's result or raises its error. A bill made for a job
        (with a chunk) runs as that job, stepped here to its end."""
        b = b if b is not None else self.bills.last
        if b is None or b.chunk is None:
            return self.run(self._bill_job(b))
        if b.endless:
            raise oserror(EINVAL, "bill: this job would retry until cancelled; start it "
                                  "as a job (`bill run` in the console) and cancel it")
        job = self.start_sync("bill", b)
        self.run_jobs([job])
        if job.error is not None:
            raise job.error
        return job.result

    @property
    def last_bill(self) -> Bill | None:
        return self.bills.last

    # ------------------------------------------------------------ checks
    def check(self) -> None:
        mm_check.check_machine(self)

    def __repr__(self) -> str:
        return (f"<Machine {self.name!r} {len(self.nodes)} nodes, "
                f"{self.nr_frames} frames of {self.page_size} B, era {self.era.name}>")


_int = int_arg  # ints only, within 64 bits: see engine/mm/state.py


def _bool(x, what: str) -> bool:
    """A true/false argument: a bool only (1, "no" or None are TypeErrors: a switch
    is never guessed from another type)."""
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{what} must be True or False, not {type(x).__name__}")
    return bool(x)


def _str(x, what: str) -> str:
    if not isinstance(x, str):
        raise TypeError(f"{what} must be a string, not {type(x).__name__}")
    return x


def _opt_str(x, what: str) -> str | None:
    return None if x is None else _str(x, what)


def _opt_int(x, what: str) -> int | None:
    return None if x is None else _int(x, what)


def _batch(x, what: str) -> int | None:
    """A batch size: None (the default) or a positive integer."""
    if x is None:
        return None
    x = _int(x, what)
    if x < 1:
        raise oserror(EINVAL, f"{what} {x} must be at least 1")
    return x


__all__ = ["Machine", "InvariantError", "RUNTIME"]
