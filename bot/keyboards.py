"""Inline keyboards as pure functions of plain data."""

from __future__ import annotations
