"""Downloads of checkpoints and benchmark files from Zenodo, the Hugging Face Hub, URLs and local paths.

`fetch(source, uri, dest, checksum=None, settings=config["fetch"])` is the one entry point;
see divcoeff.fetch.sources for the URI forms and what each source is checked against.
"""
from .errors import ChecksumError, FetchError, SizeLimitError
from .provenance import provenance_path, read_provenance
from .redact import install_log_filter, redact
from .sources import fetch

# Every record these loggers make is redacted (our own lines, and urllib3's request lines, which
# quote the path and query of a URL at DEBUG level).
install_log_filter("divcoeff", "divcoeff.fetch", "urllib3.connectionpool")

__all__ = ["fetch", "FetchError", "ChecksumError", "SizeLimitError", "provenance_path", "read_provenance",
           "redact"]
