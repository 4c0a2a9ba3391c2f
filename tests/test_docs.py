"""docs/FIELDS.md is generated from the field tables and must not go stale."""

from __future__ import annotations

from pathlib import Path

from hbtools import docs
from hbtools.fields import FIELDS

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "FIELDS.md"


def test_field_reference_is_current():
    assert REFERENCE.read_text() == docs.render(), (
        "docs/FIELDS.md is stale: run `python -m hbtools.docs > docs/FIELDS.md`")


def test_every_heartbeat_field_is_documented():
    text = REFERENCE.read_text()
    for name in FIELDS:
        assert f"| `{name}` |" in text
