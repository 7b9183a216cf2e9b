"""Errors of the fetch stage; every message names the record, repo, file or URL it is about."""
from __future__ import annotations


class FetchError(RuntimeError):
    """A download or copy that failed; nothing was left at the destination."""


class ChecksumError(FetchError):
    """The bytes that arrived are not the ones the record, the Hub or the sheet promised."""
