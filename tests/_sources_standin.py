"""Stand-in for cfdseed.sources (contract 3) until the real registry lands; used by issue-4 tests only."""

from __future__ import annotations

import sys
import types


def install() -> None:
    try:
        import cfdseed.sources  # noqa: F401
        return
    except ImportError:
        pass
    from cfdseed.errors import SourceError

    mod = types.ModuleType("cfdseed.sources")
    registry: dict = {}

    def register(name):
        def deco(factory):
            registry[name] = factory
            return factory
        return deco

    def resolve(source, options=None):
        if callable(source):
            return source
        import cfdseed.baselines  # noqa: F401
        import cfdseed.synthesis  # noqa: F401
        if source not in registry:
            raise SourceError(f"unknown source {source!r}; registered: {', '.join(sorted(registry))}")
        return registry[source](**(options or {}))

    mod.register, mod.resolve, mod._REGISTRY = register, resolve, registry
    sys.modules["cfdseed.sources"] = mod
