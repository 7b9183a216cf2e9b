"""Files of a Hugging Face Hub model repo, through huggingface_hub and its cache.

`HF_ENDPOINT` (a mirror or a test server) and `HF_TOKEN` are read from the environment when a
download starts; the token goes to huggingface_hub only and is never logged or recorded. The
revision should be a commit hash; a branch or tag works, with a warning, and the commit it
resolved to is recorded. The file the Hub sends is checked against its ETag (the LFS sha256,
or the git blob id for small files) and against the sheet's checksum before it is copied
atomically to the destination.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_path
from ..settings import FetchSettings, fetch_settings
from .checksums import Checksum, git_blob_sha1, hash_file, verify
from .errors import ChecksumError, FetchError
from .http import RETRY_STATUS, HttpSettings
from .redact import redact, register_secret

log = logging.getLogger("divcoeff.fetch")

DEFAULT_ENDPOINT = "https://huggingface.co"
COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_URI = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)/(?P<path>[^@]+)@(?P<rev>[^@\s]+)$")


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int | None
    sha256: str | None  # LFS files only; small files have a git blob id instead
    blob_id: str | None


def parse_uri(uri: str) -> tuple[str, str, str]:
    """`<namespace>/<repo>/<path/in/repo>@<revision>` -> (repo id, path, revision)."""
    m = _URI.match(uri.strip())
    if not m:
        raise FetchError(f"hf uri {uri!r}: expected <namespace>/<repo>/<path/in/repo>@<revision>, e.g. "
                         "brando/my-model/checkpoint.pt@<40-hex commit> (python -m divcoeff list-hf prints them)")
    return m.group("repo"), m.group("path"), m.group("rev")


def endpoint(settings: FetchSettings | dict | None = None) -> str:
    """fetch.hf_endpoint, else $HF_ENDPOINT, else huggingface.co (read now, not at import)."""
    return (fetch_settings(settings).hf_endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def cache_dir(settings: FetchSettings | dict | None = None) -> str | None:
    """fetch.hf_cache, else $HF_HUB_CACHE, else huggingface_hub's default."""
    return fetch_settings(settings).hf_cache or os.environ.get("HF_HUB_CACHE") or None


def _token() -> str | None:
    # Read at call time; None lets huggingface_hub fall back to a token saved by `hf auth login`.
    token = os.environ.get("HF_TOKEN") or None
    register_secret(token)  # masked wherever a message might quote it
    return token


def _describe(repo_id: str, path: str, revision: str, base: str) -> str:
    return redact(f"Hub repo {repo_id!r}, file {path!r}, revision {revision!r} (at {base})")


def _transient_errors() -> tuple:
    import httpx2  # huggingface_hub's HTTP client

    return httpx2.ConnectError, httpx2.TimeoutException, httpx2.RemoteProtocolError


def _download_to_cache(repo_id: str, path: str, revision: str, settings: FetchSettings, what: str) -> str:
    """hf_hub_download with our retries around its own; not-found errors named plainly."""
    # Imported here: huggingface_hub takes a second to import and only this source needs it.
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    http = HttpSettings.from_settings(settings)
    base = endpoint(settings)
    for attempt in range(http.retries + 1):
        try:
            return hf_hub_download(repo_id, path, revision=revision, cache_dir=cache_dir(settings), endpoint=base,
                                   token=_token(), etag_timeout=http.timeout_s)
        except GatedRepoError:
            raise FetchError(f"{what}: the repo is gated; accept its terms on the Hub and set HF_TOKEN") from None
        except RepositoryNotFoundError:
            raise FetchError(f"{what}: repository not found (or private: set HF_TOKEN)") from None
        except RevisionNotFoundError:
            raise FetchError(f"{what}: revision not found in the repo") from None
        except EntryNotFoundError as e:
            if isinstance(e, LocalEntryNotFoundError) and attempt < http.retries:
                reason = e  # the Hub could not be reached and the cache has no copy: worth another try
            elif isinstance(e, LocalEntryNotFoundError):
                raise FetchError(f"{what}: the Hub could not be reached after {attempt + 1} attempt(s) "
                                 f"({e.__cause__ or e})") from None
            else:
                raise FetchError(f"{what}: file not found in the repo at this revision") from None
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if status not in RETRY_STATUS or attempt >= http.retries:
                raise FetchError(f"{what}: HTTP {status} from the Hub after {attempt + 1} attempt(s)") from None
            reason = f"HTTP {status}"
        except _transient_errors() as e:
            if attempt >= http.retries:
                raise FetchError(f"{what}: {type(e).__name__} after {attempt + 1} attempt(s): {e}") from None
            reason = type(e).__name__
        except OSError as e:
            # huggingface_hub's "Consistency check failed" after its own resumes ran out.
            if attempt >= http.retries or "Consistency check failed" not in str(e):
                raise FetchError(f"{what}: {e}") from None
            reason = "incomplete transfer"
        except ValueError as e:  # huggingface_hub's checks of repo ids and file names
            raise FetchError(f"{what}: {e}") from None
        wait = http.delay(attempt)
        log.warning("%s: %s; attempt %d of %d in %.1f s", what, reason, attempt + 2, http.retries + 1, wait)
        time.sleep(wait)
    raise AssertionError("unreachable")


def _cache_identity(cached: str) -> tuple[str | None, str | None]:
    """(commit, etag) from the cache layout <repo>/snapshots/<commit>/<path> -> <repo>/blobs/<etag>."""
    m = re.search(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]", cached)
    commit = m.group(1) if m else None
    real = Path(os.path.realpath(cached))
    etag = real.name if real.parent.name == "blobs" else None  # None where the cache cannot use symlinks
    return commit, etag


def fetch_hf(uri: str, dest: Path, expected: Checksum | None, settings: FetchSettings) -> dict:
    from huggingface_hub import hf_hub_url

    repo_id, path, revision = parse_uri(uri)
    base = endpoint(settings)
    what = _describe(repo_id, path, revision, base)
    if not COMMIT.match(revision):
        log.warning("%s: %r is a branch or tag, not a commit hash; the file behind it can change. "
                    "Pin the commit recorded in the provenance file.", what, revision)
    cached = _download_to_cache(repo_id, path, revision, settings, what)
    commit, etag = _cache_identity(cached)
    commit = commit or (revision if COMMIT.match(revision) else None)
    with atomic_path(dest) as tmp:
        shutil.copyfile(cached, tmp)
        hashes = hash_file(tmp)
        checks = []
        if etag and _SHA256.match(etag):
            checks.append(("the Hub (LFS sha256)", Checksum("sha256", etag)))
        if expected is not None:
            checks.append(("the checkpoint sheet", expected))
        try:
            passed = verify(hashes, checks, what)
            if etag and COMMIT.match(etag):
                blob = git_blob_sha1(tmp)
                if blob != etag:
                    raise ChecksumError(f"{what}: the Hub's git blob id is {etag}, the downloaded bytes have "
                                        f"{blob}; the file was deleted")
                passed.append(f"git blob {etag} from the Hub")
        except ChecksumError:
            # The cached copy is the corrupt one; drop it so a rerun downloads it again.
            Path(os.path.realpath(cached)).unlink(missing_ok=True)
            Path(cached).unlink(missing_ok=True)
            raise
    if not passed:
        log.warning("%s: no checksum to compare with (the cache gave no ETag and the sheet none)", what)
    return {
        "url": hf_hub_url(repo_id, path, revision=commit or revision, endpoint=base),
        "endpoint": base,
        "repo_id": repo_id,
        "path": path,
        "revision": revision,
        "commit": commit,
        "etag": etag,
        "size": hashes["size"],
        "sha256": hashes["sha256"],
        "md5": hashes["md5"],
        "verified": passed,
    }


def list_repo_files(repo_id: str, revision: str = "main", settings: FetchSettings | dict | None = None) -> tuple[str, list]:
    """(commit the revision resolves to, [HubFile]) of a model repo, via /api/models/<repo>/revision/<rev>."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    base = endpoint(settings)
    what = redact(f"Hub repo {repo_id!r}, revision {revision!r} (at {base})")
    http = HttpSettings.from_settings(settings)
    api = HfApi(endpoint=base, token=_token())
    for attempt in range(http.retries + 1):
        try:
            info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=http.timeout_s)
            break
        except RepositoryNotFoundError:
            raise FetchError(f"{what}: repository not found (or private: set HF_TOKEN)") from None
        except RevisionNotFoundError:
            raise FetchError(f"{what}: revision not found in the repo") from None
        except (HfHubHTTPError, *_transient_errors()) as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            transient = not isinstance(e, HfHubHTTPError) or status in RETRY_STATUS
            if not transient or attempt >= http.retries:
                raise FetchError(f"{what}: {type(e).__name__} (HTTP {status}) after {attempt + 1} attempt(s)") from None
            time.sleep(http.delay(attempt))
    files = [HubFile(path=s.rfilename, size=s.size, sha256=s.lfs.sha256 if s.lfs else None, blob_id=s.blob_id)
             for s in info.siblings or []]
    return info.sha, files
