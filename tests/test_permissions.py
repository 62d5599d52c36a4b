"""Caller/target credentials for move_pages, migrate_pages and mbind: Linux's EPERM and
EACCES answers (uid 0 has CAP_SYS_NICE and CAP_SYS_PTRACE, other uids none)."""

import errno

import pytest
from conftest import small

from engine import MPOL_BIND, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL

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
