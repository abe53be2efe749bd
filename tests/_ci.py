"""What a test does when a tool it needs is absent: skip on a developer's machine, fail under CI
(``CI`` set, as ``.ci/run`` sets it), where ``.ci/run`` installs every tool the suite uses."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str, *, module: bool = False) -> NoReturn:
    """Skip (``module``: the whole test module) because ``what`` is absent; under CI, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}: CI installs it (.ci/run), so its tests must run", pytrace=False)
    pytest.skip(what, allow_module_level=module)
