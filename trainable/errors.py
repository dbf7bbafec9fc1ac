"""The project's exception for bad user input, and the command-line guard that reports it.

Anything the user controls (a data folder, a space file, a command-line flag) that is wrong raises
:class:`UserError` with one line that names the file or key and says what is wrong. Command-line
entry points wrap their ``main`` in :func:`exit_on_user_error`, which prints that line and exits
with status 2, without a traceback. Bugs in this project keep their tracebacks.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., object])

USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """Bad input from the user: one line naming the file or key and what is wrong."""


class DataError(UserError):
    """A data set on disk, or the ``data:`` block describing it, cannot be loaded."""


def exit_on_user_error(main: F) -> F:
    """Wrap a command-line ``main`` so a :class:`UserError` becomes one line on stderr and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT_CODE)

    return wrapper  # type: ignore[return-value]
