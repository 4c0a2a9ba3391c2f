"""Capture reading for hbtools: pcap/pcapng, link/IP/UDP layers, IP reassembly, protocol
detection, records, statistics and output writers. ``hbtool decode`` drives it through
`dissectors.pipeline`; the codecs in ``hbtools`` stay the only authority on fields.
"""

if __name__ == "dissectors":  # the folder is on sys.path (run from the checkout's root)
    raise ImportError("import hbtools.dissectors, not dissectors: one module, one name (issue 14)")
