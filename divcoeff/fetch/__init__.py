"""Downloads of checkpoints and benchmark files from Zenodo, the Hugging Face Hub, URLs and local paths.

`fetch(source, uri, dest, checksum=None, settings=config["fetch"])` is the one entry point;
see divcoeff.fetch.sources for the URI forms and what each source is checked against.
"""
from .errors import ChecksumError, FetchError
from .provenance import provenance_path, read_provenance
from .sources import DEFAULT_SETTINGS, fetch

__all__ = ["fetch", "FetchError", "ChecksumError", "provenance_path", "read_provenance", "DEFAULT_SETTINGS"]
