"""Failure detectors, pure and time-injected, behind one interface (see :mod:`.base`).

* :class:`FixedDeadtime` — Heartbeat 3.0.6's rule (deadtime, warntime, the peer's ``dt``).
* :class:`Binary`, :class:`Static`, :class:`Expanding`, :class:`Dynamic` — Gouda & McGuire's
  accelerated heartbeats, ``variant="original"`` or ``"fixed"`` (see :mod:`.accelerated` for which
  is which and why).
* :class:`PhiAccrual` — Hayashibara et al.; :func:`akka` (normal) and :func:`cassandra`
  (exponential).
"""

from hbtools.detectors.accelerated import Binary, Dynamic, Expanding, Participant, Root, Static
from hbtools.detectors.base import BEAT, JOIN, LEAVE, REPLY, Detector, Send
from hbtools.detectors.fixed import FixedDeadtime
from hbtools.detectors.phi import PhiAccrual, akka, cassandra

__all__ = ["BEAT", "JOIN", "LEAVE", "REPLY", "Binary", "Detector", "Dynamic", "Expanding",
           "FixedDeadtime", "Participant", "PhiAccrual", "Root", "Send", "Static", "akka",
           "cassandra"]
