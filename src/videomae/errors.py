"""The errors that a user fixes by typing something else.

A :class:`UserError` (a config value, an unknown key, a missing path or data set, a checkpoint of
the wrong kind) is reported by ``train.py`` / ``eval.py`` as one short block naming the key or path
and what to type instead, without a traceback (``HYDRA_FULL_ERROR=1`` shows it); see
:mod:`videomae.utils.preflight`. Everything else is a bug or an environment failure and keeps its
traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the command line or in a file it names; the message says what to type."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work; the message names the key."""


class DataNotFoundError(UserError, FileNotFoundError):
    """A data set folder, list or label file that is not there; the message says how to make it."""


class CheckpointError(UserError, FileNotFoundError):
    """A checkpoint path that is missing, not a checkpoint, or of the wrong kind for the run."""


def user_message(error: UserError) -> str:
    """The message of ``error``; for an error re-raised from a DataLoader worker (whose message
    PyTorch replaces with the worker's whole traceback), the original message alone."""
    text = str(error)
    if "Original Traceback (most recent call last):" in text:
        marker = f"{type(error).__module__}.{type(error).__qualname__}: "
        start = text.rfind(marker)
        if start >= 0:
            text = text[start + len(marker) :]
    return text.strip()


def find_user_error(error: BaseException) -> UserError | None:
    """The :class:`UserError` in ``error``'s chain of explicit causes (``raise ... from``, as
    Hydra's ``instantiate`` wraps what a constructor raises), or None. An error raised while
    another was being handled is not that error: it keeps its traceback."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None
