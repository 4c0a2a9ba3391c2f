"""hbtools: packet-level toolkit for Linux-HA clusters (Heartbeat and Corosync Totem)."""

__version__ = "0.1.0"
