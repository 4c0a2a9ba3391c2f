"""Capture reading for hbtools: pcap/pcapng, link/IP/UDP layers, IP reassembly, protocol
detection, records, statistics and output writers. ``hbtool decode`` drives it through
`dissectors.pipeline`; the codecs in ``hbtools`` stay the only authority on fields.
"""
