"""Use cases: what each ``hbtool`` verb does, as library calls.

A click command only parses options, calls one of these, and prints. The chaos engine, the pytest
plugin and a notebook call the same objects without a subprocess, so there is one implementation of
"run a fault session" or "decode a capture", not one per caller.
"""
