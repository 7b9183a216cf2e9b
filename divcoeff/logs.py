"""Logging for workflow scripts: everything (our messages, warnings, tqdm) goes to the rule's log."""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def log_to(path: str | None) -> Iterator[logging.Logger]:
    """Send logging, warnings and stderr (tqdm's progress bars) to the rule's log file.

    Any exception is written there with its traceback before it propagates, so a failed
    checkpoint's log says why.
    """
    if not path:
        yield logging.getLogger("divcoeff")
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1, encoding="utf-8") as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        old_stderr = sys.stderr
        sys.stderr = f
        try:
            yield logging.getLogger("divcoeff")
        except BaseException:
            logging.getLogger("divcoeff").exception("job failed")
            raise
        finally:
            sys.stderr = old_stderr
            root.removeHandler(handler)
