"""CLI commands for rules (to be filled in)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    return None
