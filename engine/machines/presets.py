"""The embedded default machine: 4 memory nodes of 2 GiB with a 2-socket-like SLIT,
kernel pages in the kernel zones, a Movable zone on node 3, an uncached PFN-map driver,
a framebuffer, an RDMA driver, and processes that make the map interesting."""

DEFAULT_DESCRIPTION = {
    "machine": {"name": "default", "page_size": "4K", "era": "modern", "seed": 42,
                "block_size": "128M", "kernel": "3%"},
    "nodes": [
        {"id": 0, "cpus": "0-7", "zones": {"DMA": "16M", "DMA32": "2032M"}},
        {"id": 1, "cpus": "8-15", "zones": {"DMA32": "2G"}},
        {"id": 2, "cpus": "16-23", "zones": {"Normal": "2G"}},
        {"id": 3, "cpus": "24-31", "zones": {"Normal": "1G", "Movable": "1G"}},
    ],
    "distances": {"matrix": [[10, 16, 32, 32], [16, 10, 32, 32],
                             [32, 32, 10, 16], [32, 32, 16, 10]]},
    "drivers": [
        {"name": "uncached", "kind": "uncached", "node": 1, "size": "16M", "hook": True},
        {"name": "fb0", "kind": "framebuffer", "node": 0, "size": "8M", "hook": False},
        {"name": "rdma0", "kind": "rdma", "node": 2},
    ],
    "processes": [
        {"name": "init", "pid": 1, "node": 0, "vmas": [
            {"size": "8M", "touch": "50%"},
            {"kind": "file", "file": "/usr/lib/libc.so.6", "size": "2M", "write": False}]},
        {"name": "kthreadd", "pid": 2, "node": 0, "kthread": True},
        {"name": "memcached", "pid": 100, "uid": 1000, "node": 0, "policy": "interleave:0-3",
         "vmas": [{"size": "256M", "touch": "100%"},
                  {"kind": "file", "file": "/usr/lib/libc.so.6", "size": "2M",
                   "write": False}]},
        {"name": "postgres", "pid": 101, "uid": 1001, "node": 1, "policy": "bind:1",
         "vmas": [{"size": "192M", "touch": "75%"},
                  {"kind": "file", "file": "/var/lib/pg/base", "size": "64M",
                   "touch": "100%"},
                  {"kind": "file", "file": "/usr/lib/libc.so.6", "size": "2M",
                   "write": False}]},
        {"name": "pg_dump", "pid": 102, "uid": 1001, "node": 2, "vmas": [
            {"kind": "file", "file": "/var/lib/pg/base", "size": "64M", "touch": "100%",
             "write": False},
            {"size": "16M", "touch": "100%"}]},
        {"name": "java", "pid": 103, "uid": 1000, "node": 0, "vmas": [
            {"size": "320M", "touch": "90%", "touch_node": 2},
            {"size": "32M", "touch": "100%"}]},
        {"name": "trader", "pid": 104, "uid": 0, "node": 2, "vmas": [
            {"size": "64M", "touch": "100%", "mlock": True},
            {"size": "16M", "touch": "50%"}]},
        {"name": "Xorg", "pid": 105, "uid": 0, "node": 0, "vmas": [
            {"kind": "driver", "driver": "fb0", "size": "8M"},
            {"size": "24M", "touch": "60%"}]},
        {"name": "sgi-mpt", "pid": 106, "uid": 0, "node": 1, "vmas": [
            {"kind": "driver", "driver": "uncached", "size": "16M"},
            {"size": "32M", "touch": "100%"}]},
        {"name": "ib_send_bw", "pid": 107, "uid": 1000, "node": 3, "cpuset": "2-3", "vmas": [
            {"size": "64M", "touch": "100%", "pin": "rdma0"},
            {"size": "64M", "touch": "100%"}]},
    ],
}
