"""Errors of the fetch stage; every message names the record, repo, file or URL it is about.

Messages are redacted when the error is made (divcoeff.fetch.redact), so no code path can put a
password, a token query parameter or an Authorization value into a log, a traceback or the console.
"""
from __future__ import annotations

from .redact import redact


class FetchError(RuntimeError):
    """A download or copy that failed; nothing was left at the destination."""

    def __init__(self, *args):
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class ChecksumError(FetchError):
    """The bytes that arrived are not the ones the record, the Hub or the sheet promised."""


class SizeLimitError(FetchError):
    """More bytes arrived (or were announced) than the download may have (`fetch.max_bytes`); nothing was kept."""
