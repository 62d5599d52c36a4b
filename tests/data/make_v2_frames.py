"""How tests/data/v2-frames.snap was made: run from a checkout of main before issue 15
(engine v2, seven frame arrays) as `PYTHONPATH=. python3 tests/data/make_v2_frames.py
OUT`; it prints the machine's fingerprint (tests/conftest.py), which
tests/test_frames.py expects of the loaded file. Anonymous, page-cache (shared and
private) and driver frames, a long-term pin, mlock, moved pages, an offline block."""

import sys

sys.path.insert(0, "tests")

from conftest import fingerprint, small  # noqa: E402

import engine  # noqa: E402
from engine.constants import MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE  # noqa: E402

m = small(nodes=3, size="16M",
          drivers=[{"name": "fb0", "kind": "framebuffer", "node": 1, "size": "256K"},
                   {"name": "rdma0", "kind": "rdma", "node": 0}])
ps = m.page_size
a = m.spawn("a", node=0, pid=10)
x = m.mmap(a, 2 << 20)
m.touch(a, x, 2 << 20)
f = m.mmap(a, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, file="data")
m.touch(a, f, 1 << 20)
g = m.mmap(a, 1 << 20, PROT_READ, MAP_PRIVATE, file="data")
m.touch(a, g, 512 << 10, write=False)
b = m.spawn("b", node=1, pid=11)
h = m.mmap(b, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, file="data")
m.touch(b, h, 1 << 20, write=False)
d = m.mmap(b, 256 << 10, PROT_READ | PROT_WRITE, MAP_SHARED, driver="fb0")
m.touch(b, d, 64 << 10)
m.pin(a, x, 256 << 10, "rdma0")
m.mlock(a, x + (1 << 20), 256 << 10)
m.move_pages(a, [x + (512 << 10) + i * ps for i in range(64)], [2] * 64)
m.migrate_pages(b, [0], [2])
m.offline_block(m.f.n // m.block_pages - 1)
m.check()
engine.save(m, sys.argv[1])
print(fingerprint(m))
