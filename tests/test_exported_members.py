"""The public surface of ``ingmon`` is pinned, as httpx pins its own."""

from __future__ import annotations
import __future__

import inspect

import ingmon


def test_all_imports_are_exported() -> None:
    """ingmon.__all__ lists every public name of the package, sorted case-insensitively."""
    included_private_members = ["__version__"]
    assert ingmon.__all__ == sorted(
        (
            member
            for member, value in vars(ingmon).items()
            if (not member.startswith("_") or member in included_private_members)
            # submodules and the `from __future__ import annotations` flag are not API
            and not inspect.ismodule(value)
            and not isinstance(value, __future__._Feature)
        ),
        key=str.casefold,
    )
