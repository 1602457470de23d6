"""Fixtures of the chaos tests (helpers in chaos/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from chaos.helpers import leave_clean
from sample_shop.topology import StackDescriptor


@pytest.fixture
def clean_stack(stack: StackDescriptor, control: httpx.Client) -> Iterator[StackDescriptor]:
    """The session stack, with no fault, no policy override and no load before and after the test."""
    leave_clean(stack, control)
    try:
        yield stack
    finally:
        leave_clean(stack, control)
