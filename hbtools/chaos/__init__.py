"""The chaos engine: nemeses against the lab's cluster kinds, judged from observation.

* :mod:`hbtools.chaos.scenarios` — scenarios (Python or TOML): steps with time windows.
* :mod:`hbtools.chaos.runner` — one run: cluster (reused after a reset check), capture, 20 Hz
  sampling of VIP owners and the client's ARP entry, nemesis steps, verdict, files.
* :mod:`hbtools.chaos.checkers` — pure verdict rules; :mod:`hbtools.chaos.wire` — the capture.
* :mod:`hbtools.chaos.expected` — the observed verdict per (scenario, implementation).
* :mod:`hbtools.chaos.pytest_plugin` — fixtures and the ``chaos`` marker for pytest.
"""
