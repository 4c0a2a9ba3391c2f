"""A small Heartbeat 3.0.6 node: the reference daemon behind ``hbtool daemon``.

Layers, one way only:

* :mod:`hbtools.node.config` reads an ``/etc/ha.d``-style directory into plain data.
* :mod:`hbtools.node.state` is the transition table (peer states, local states).
* :mod:`hbtools.node.core` is the sans-I/O node: bytes and times in, datagrams and actions out.
* :mod:`hbtools.node.runner` is the thin I/O shell (sockets, timers, ``ip addr``, ARP, fencing).
"""
