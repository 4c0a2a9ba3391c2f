"""What the fuzz targets share: seeds from the committed captures, and the libFuzzer main."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


def udp_payloads(per_capture: int) -> Iterator[tuple[Path, int, bytes]]:
    """(capture, frame index, UDP payload) for the first frames of every real capture."""
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    for pcap in sorted(CAPTURES.glob("*/capture.pcap")):
        with PcapReader(str(pcap)) as reader:
            for index, packet in enumerate(reader):
                if index >= per_capture:
                    break
                if UDP in packet:
                    yield pcap, index, bytes(packet[UDP].payload)


def run(prefix: str, seed: Callable[[Path], None], target: Callable[[bytes], None]) -> None:
    """Seed a fresh corpus folder and fuzz ``target`` with the command line's libFuzzer flags."""
    import atheris

    corpus = Path(tempfile.mkdtemp(prefix=prefix))
    seed(corpus)
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(corpus)], target)
    atheris.Fuzz()
