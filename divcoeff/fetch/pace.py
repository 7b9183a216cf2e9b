"""Request pacing shared by every process of a workflow run: sliding-window limits and Retry-After.

Zenodo allows guests 60 requests a minute and 2,000 an hour (more with a token) and answers 429
with `Retry-After` beyond that. `snakemake --cores 8` runs several fetch jobs at once, each in its
own process, so the pace is kept in a small JSON file (e.g. `resources/.zenodo-pace`) that every
process reads and updates under an exclusive `fcntl.flock`:

    {"blocked_until": <unix time>, "slots": [[<id>, <unix time>], ...]}

A request may start when, for every window (n requests per s seconds), fewer than n slots lie in
the last s seconds, and `blocked_until` has passed. Its slot is stamped with the time the request
was sent, then re-stamped when the response arrives: a request counts from the later of the two,
so that requests k and k+n reach the server at least s seconds apart whatever the network delay.
A 429 (or `X-RateLimit-Remaining: 0`) sets `blocked_until` for everybody.

Without a file the same state lives in memory and paces this process only.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import FetchError

log = logging.getLogger("divcoeff.fetch")

_MAX_SLEEP_S = 5.0  # wake up at least this often to re-read the shared state (another job may have
                    # been told to wait longer)


@dataclass(frozen=True)
class Window:
    requests: int
    seconds: float

    def __post_init__(self):
        if int(self.requests) < 1 or not float(self.seconds) > 0:
            raise ValueError(f"pace window: need requests >= 1 and seconds > 0, got {self.requests}/{self.seconds}")


def windows_from(spec, where: str = "pace") -> tuple[Window, ...]:
    """[{requests: 60, window_s: 60}, ...] (the config's form) -> Windows."""
    try:
        return tuple(Window(int(w["requests"]), float(w["window_s"])) for w in spec or ())
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: expected a list of {{requests: N, window_s: S}}, got {spec!r} ({e})") from None


class _MemoryState:
    """The pace state of one process (no file configured)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state: dict = {}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        with self._lock:
            state = json.loads(json.dumps(self._state))
            yield state
            self._state = state


class _FileState:
    """The pace state in a file shared by processes, read and written under an exclusive flock."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        with os.fdopen(fd, "r+", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                text = f.read()
                try:
                    state = json.loads(text) if text.strip() else {}
                    if not isinstance(state, dict):
                        raise ValueError("not an object")
                except ValueError:
                    log.warning("%s: unreadable pace file; starting it afresh", self.path)
                    state = {}
                yield state
                f.seek(0)
                f.truncate()
                f.write(json.dumps(state))
                f.flush()
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


_MEMORY: dict[str, _MemoryState] = {}
_MEMORY_LOCK = threading.Lock()


def _memory_state(name: str) -> _MemoryState:
    with _MEMORY_LOCK:
        return _MEMORY.setdefault(name, _MemoryState())


class Pacer:
    """Paces requests to one service; see the module docstring.

    `path`: the shared pace file (None: this process only). `max_wait_s`: the longest wait this
    pacer accepts (a Retry-After or a full window); asked for more, it raises FetchError instead
    of sleeping for hours. `name` names the service in messages and the in-memory state.
    """

    def __init__(self, name: str, windows: tuple[Window, ...], path: str | os.PathLike | None = None,
                 max_wait_s: float = 3600.0):
        self.name = name
        self.windows = tuple(windows)
        self.path = Path(path) if path else None
        self.max_wait_s = float(max_wait_s)
        self._state = _FileState(self.path) if self.path else _memory_state(name)
        self._horizon = max((w.seconds for w in self.windows), default=0.0)

    # -- the state --------------------------------------------------------------------------
    def _clean(self, state: dict, now: float) -> list:
        slots = [s for s in state.get("slots", []) if isinstance(s, list) and len(s) == 2
                 and isinstance(s[1], (int, float))]
        # Drop what no window can see any more, and stamps from the future (a clock set back).
        slots = [s for s in slots if now - self._horizon < s[1] <= now + self._horizon]
        state["slots"] = slots
        blocked = state.get("blocked_until")
        state["blocked_until"] = float(blocked) if isinstance(blocked, (int, float)) and blocked > now else 0.0
        return slots

    def _wait_needed(self, state: dict, now: float) -> tuple[float, str]:
        wait, why = state["blocked_until"] - now, "the server asked to wait (Retry-After)"
        for w in self.windows:
            recent = sorted(t for _, t in state["slots"] if t > now - w.seconds)
            if len(recent) >= w.requests:
                free_at = recent[len(recent) - w.requests] + w.seconds
                if free_at - now > wait:
                    wait, why = free_at - now, f"{w.requests} requests per {w.seconds:g} s"
        return wait, why

    # -- the API ----------------------------------------------------------------------------
    def acquire(self, what: str) -> str:
        """Wait until a request may start, then reserve it; returns the slot id for `done`."""
        slot = os.urandom(8).hex()
        announced = False
        while True:
            with self._state.transaction() as state:
                now = time.time()
                self._clean(state, now)
                wait, why = self._wait_needed(state, now)
                if wait <= 0:
                    state["slots"].append([slot, now])
                    return slot
            if wait > self.max_wait_s:
                raise FetchError(f"{what}: {self.name} pacing ({why}) would wait {wait:.0f} s, more than the "
                                 f"{self.max_wait_s:g} s allowed (fetch settings); try again later")
            if not announced and wait >= 1:
                log.info("%s: waiting %.1f s for %s (%s)", what, wait, self.name, why)
                announced = True
            time.sleep(min(wait, _MAX_SLEEP_S))

    def done(self, slot: str) -> None:
        """Re-stamp a reserved slot with the time its response arrived."""
        with self._state.transaction() as state:
            now = time.time()
            for s in state.get("slots", []):
                if isinstance(s, list) and s and s[0] == slot:
                    s[1] = max(s[1], now)
                    break

    def hold(self, seconds: float, what: str, reason: str) -> None:
        """Nobody sends before now + seconds; raises FetchError if that is more than max_wait_s."""
        with self._state.transaction() as state:
            now = time.time()
            self._clean(state, now)
            state["blocked_until"] = max(state["blocked_until"], now + max(0.0, seconds))
        log.warning("%s: %s; every %s request waits %.1f s", what, reason, self.name, seconds)
        if seconds > self.max_wait_s:
            raise FetchError(f"{what}: {reason}: {self.name} asks to wait {seconds:.0f} s, more than the "
                             f"{self.max_wait_s:g} s allowed (fetch settings); try again later")

    @contextlib.contextmanager
    def request(self, what: str) -> Iterator[None]:
        """`with pacer.request(what): response = session.get(...)` reserves, then stamps the slot."""
        slot = self.acquire(what)
        try:
            yield
        finally:
            self.done(slot)
