"""The one root of the errors `slo/` raises: a caller that wants "anything the SLO code refused" catches
`SloError`. Each error also keeps the built-in base it always had (ValueError for bad input, RuntimeError
for what went wrong while running), so existing handlers stay right."""

from __future__ import annotations


class SloError(Exception):
    """Raised by slo/ for input it refuses or a source it cannot read; the message says where and how to
    fix it."""
