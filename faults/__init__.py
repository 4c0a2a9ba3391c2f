"""The NFQUEUE fault proxy behind ``hbtool fault``.

Pure parts (no sockets, no clocks): `faults.packet` (IPv4/UDP framing and checksums),
`faults.rules` (the rule language), `faults.scenario` (TOML timelines), `faults.engine`
(packet in, verdicts out, held packets released by a caller-supplied ``now``). The thin
I/O shell is `faults.nfq` (netfilter rules, the queue, raw sockets for copies).
"""

if __name__ == "faults":  # the folder is on sys.path (run from the checkout's root)
    raise ImportError("import hbtools.faults, not faults: one module, one name (issue 14)")
