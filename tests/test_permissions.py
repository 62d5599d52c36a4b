"""Caller/target credentials for move_pages, migrate_pages and mbind: Linux's EPERM and
EACCES answers (uid 0 has CAP_SYS_NICE and CAP_SYS_PTRACE, other uids none)."""

import errno

import pytest
from conftest import fingerprint, small

import engine
from engine import MPOL_BIND, MPOL_F_ADDR, MPOL_INTERLEAVE, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL

OK = 0

# (call, caller uid, target uid, flags/extra, era) -> expected errno (0 = allowed)
TABLE = [
    ("move_pages", 1000, 1000, MPOL_MF_MOVE, "modern", OK),
    ("move_pages", 1000, 1001, MPOL_MF_MOVE, "modern", errno.EPERM),  # ptrace check
    ("move_pages", 1000, 0, MPOL_MF_MOVE, "modern", errno.EPERM),
    ("move_pages", 0, 1000, MPOL_MF_MOVE, "modern", OK),
    ("move_pages", 1000, 1000, MPOL_MF_MOVE_ALL, "modern", errno.EPERM),  # CAP_SYS_NICE
    ("move_pages", 0, 1000, MPOL_MF_MOVE_ALL, "modern", OK),
    ("move_pages", 1000, 1001, MPOL_MF_MOVE, "2.6.18", errno.EPERM),  # uid rule
    ("move_pages", 1000, 1000, "outside-cpuset", "modern", errno.EACCES),
    ("move_pages", 0, 1000, "outside-cpuset", "modern", errno.EACCES),  # even for root
    ("migrate_pages", 1000, 1000, None, "modern", OK),
    ("migrate_pages", 1000, 1001, None, "modern", errno.EPERM),
    ("migrate_pages", 0, 1001, None, "modern", OK),
    ("migrate_pages", 1000, 1000, "outside-cpuset", "modern", errno.EPERM),
    ("migrate_pages", 0, 1000, "outside-cpuset", "modern", OK),  # CAP_SYS_NICE
    ("mbind", 1000, 1000, MPOL_MF_MOVE, "modern", OK),
    ("mbind", 1000, 1000, MPOL_MF_MOVE_ALL, "modern", errno.EPERM),
    ("mbind", 0, 0, MPOL_MF_MOVE_ALL, "modern", OK),
]


@pytest.mark.parametrize("call,cuid,tuid,extra,era,want", TABLE,
                         ids=[f"{c}-caller{cu}-target{tu}-{e}-{era}-{w}"
                              for c, cu, tu, e, era, w in TABLE])
def test_permission_table(call, cuid, tuid, extra, era, want):
    m = small(era=era)
    target = m.spawn("target", uid=tuid, node=0, mems_allowed="0-2")
    caller = target if (cuid == tuid and call == "mbind") else m.spawn("caller", uid=cuid)
    a = m.mmap(target, 4 * m.page_size)
    m.touch(target, a, 4 * m.page_size, node=0)
    dest = 3 if extra == "outside-cpuset" else 1

    def do():
        if call == "move_pages":
            fl = MPOL_MF_MOVE if extra == "outside-cpuset" else extra
            return m.move_pages(target, [a], [dest], fl, caller=caller)
        if call == "migrate_pages":
            return m.migrate_pages(target, [0], [dest], caller=caller)
        return m.mbind(target, a, m.page_size, MPOL_BIND, [1], extra, caller=caller)

    if want == OK:
        do()
    else:
        with pytest.raises(OSError) as e:
            do()
        assert e.value.errno == want
    m.check()


# ---------------------------------------------------------------- round 2: every call

# Calls Linux makes on the caller's own address space (no pid argument): a caller
# naming another process is EPERM whatever its uid; prlimit, move_pages and
# migrate_pages take a pid and check the caller's uid. (issue 11 item 4)
OWN, SAME_UID, OTHER_UID, ROOT_OTHER = "own", "same-uid", "other-uid", "root-on-other"


def _calls(m, target, a):
    return {
        "move_pages": lambda c: m.move_pages(target, [a], [1], MPOL_MF_MOVE, caller=c),
        "migrate_pages": lambda c: m.migrate_pages(target, [0], [1], caller=c),
        "mbind": lambda c: m.mbind(target, a, m.page_size, MPOL_BIND, [1], MPOL_MF_MOVE,
                                   caller=c),
        "set_mempolicy": lambda c: m.set_mempolicy(target, MPOL_INTERLEAVE, [0, 1],
                                                   caller=c),
        "get_mempolicy": lambda c: m.get_mempolicy(target, a, MPOL_F_ADDR, caller=c),
        "fork": lambda c: m.fork(target, caller=c),
        "setrlimit": lambda c: m.setrlimit(target, "memlock", 1 << 20, caller=c),
        "getrlimit": lambda c: m.getrlimit(target, "memlock", caller=c),
    }


MATRIX = {  # call -> expected errno for (own, same uid, other uid, root on another)
    "move_pages": (OK, OK, errno.EPERM, OK),
    "migrate_pages": (OK, OK, errno.EPERM, OK),
    "mbind": (OK, errno.EPERM, errno.EPERM, errno.EPERM),
    "set_mempolicy": (OK, errno.EPERM, errno.EPERM, errno.EPERM),
    "get_mempolicy": (OK, errno.EPERM, errno.EPERM, errno.EPERM),
    "fork": (OK, errno.EPERM, errno.EPERM, errno.EPERM),
    "setrlimit": (OK, OK, errno.EPERM, OK),
    "getrlimit": (OK, OK, errno.EPERM, OK),
}
WHO = (OWN, SAME_UID, OTHER_UID, ROOT_OTHER)


@pytest.mark.parametrize("call,who", [(c, w) for c in MATRIX for w in WHO],
                         ids=[f"{c}-{w}" for c in MATRIX for w in WHO])
def test_permission_matrix_of_the_calls(call, who):
    """mbind, set_mempolicy, get_mempolicy and fork act on the calling process only;
    move_pages, migrate_pages (ptrace access) and prlimit (check_prlimit_permission())
    act on another process of the same uid, or any with root. A refused call changes
    nothing."""
    m = small()
    target = m.spawn("target", uid=1000)
    a = m.mmap(target, 4 * m.page_size)
    m.touch(target, a, 4 * m.page_size, node=0)
    caller = {OWN: target, SAME_UID: m.spawn("peer", uid=1000),
              OTHER_UID: m.spawn("stranger", uid=1001), ROOT_OTHER: m.spawn("root")}[who]
    want = MATRIX[call][WHO.index(who)]
    fn = _calls(m, target, a)[call]
    before = fingerprint(m)
    if want == OK:
        fn(caller)
    else:
        with pytest.raises(OSError) as e:
            fn(caller)
        assert e.value.errno == want
        assert fingerprint(m) == before
    m.check()


ADMIN = ["hook", "offline", "online", "offline_block", "online_block", "era", "save",
         "load", "offline_job"]


@pytest.mark.parametrize("act", ADMIN)
@pytest.mark.parametrize("uid", [1000, 0])
def test_administrator_acts_need_cap_sys_admin(act, uid, tmp_path):
    """Hooks, hot-remove and hot-add (writes to memoryN/state), the era (booting another
    kernel), load and save: EPERM for a caller without CAP_SYS_ADMIN, done for root."""
    m = small(movable="8M", drivers=[{"name": "unc", "kind": "uncached", "node": 0,
                                      "size": "1M"}])
    caller = m.spawn("c", uid=uid)
    blk = m.blocks()[-1]["index"]
    if act.startswith("online"):
        m.offline(3, "Movable")  # the operator takes it offline first
    snap = tmp_path / "m.snap"
    engine.save(m, snap)
    acts = {
        "hook": lambda: m.set_migrate_hook("unc", True, caller=caller),
        "offline": lambda: m.offline(3, "Movable", caller=caller),
        "online": lambda: m.online(3, "Movable", caller=caller),
        "offline_block": lambda: m.offline_block(blk, caller=caller),
        "online_block": lambda: m.online_block(blk, caller=caller),
        "era": lambda: m.set_era("2.6.18", caller=caller),
        "save": lambda: engine.save(m, tmp_path / "out.snap", caller=caller),
        "load": lambda: engine.load(snap, machine=m, caller=caller),
        "offline_job": lambda: m.run_jobs([m.start("offline", 3, "Movable", caller=caller)]),
    }
    before = fingerprint(m)
    if uid == 0:
        acts[act]()
    else:
        with pytest.raises(OSError) as e:
            acts[act]()
        assert e.value.errno == errno.EPERM
        assert fingerprint(m) == before
        assert not (tmp_path / "out.snap").exists()
    m.check()
