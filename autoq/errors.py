"""The one exception type for bad user input (files, options, configurations)."""
from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: the CLI prints the message without a traceback, exit code 2.

    Messages name the file and key path at fault, the value received and what is allowed.
    """


def where(path: str | None, key: str | None) -> str:
    """Format 'file: key' for error messages; either part may be missing."""
    parts = [p for p in (path, key) if p]
    return ": ".join(parts) + ": " if parts else ""
