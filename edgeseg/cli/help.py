"""Help output: flags are listed without a value type.

typer 0.29's rich help takes an option's type label from ``TyperOption.display_type_rich``, which, unlike its
plain-text formatter, does not skip flags, so every flag read ``--force <bool>`` as if it took a value. An
empty metavar is what that method returns instead of the type; the command and group classes below give one to
every flag (``--help`` included, which click creates per context) when the parameters are listed.
"""

from __future__ import annotations

import typer.core


class _FlagsWithoutType:
    def get_params(self, ctx):  # type: ignore[no-untyped-def]
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class Command(_FlagsWithoutType, typer.core.TyperCommand):
    """A typer command whose help lists flags without ``<bool>``."""


class Group(_FlagsWithoutType, typer.core.TyperGroup):
    """A typer group whose help lists flags without ``<bool>``."""
