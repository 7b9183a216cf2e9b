"""One redaction function for everything the fetch stage writes: log lines, error messages, provenance.

`redact(text)` hides, anywhere in a piece of text (a bare URL, a log line, an exception message
that quotes a URL or a header dict):

* the user-info part of a URL: `https://user:password@host/` -> `https://***@host/`;
* the value of query parameters that carry credentials (`token=`, `access_token=`, `api_key=`,
  `X-Amz-Signature=`, `sig=`, `password=`, ...): `?token=abc` -> `?token=***`;
* the value of an `Authorization` header and of `Bearer`/`Basic` credentials;
* any secret registered with `register_secret` (the values of $ZENODO_TOKEN and $HF_TOKEN are
  registered when they are read, and the password of a URL when it is fetched), wherever it
  appears, e.g. percent-decoded inside a library's message.

It is idempotent (`redact(redact(x)) == redact(x)`) and leaves other text alone.
"""
from __future__ import annotations

import logging
import re
import threading
from urllib.parse import unquote

MASK = "***"

# scheme://userinfo@ : the user-info is everything between // and the first @ before the path.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@'\"<>]*@")
# Query or fragment parameters whose value is a credential. Names are matched whole (preceded by
# a delimiter), so `tokens_used=` or `mytoken=` are left alone.
_SECRET_NAMES = (
    r"(?:[a-z0-9]+[_-])*token",          # token, access_token, refresh_token, x-amz-security-token, ...
    r"api[_-]?key", r"access[_-]?key", r"secret", r"client[_-]?secret", r"password", r"passwd", r"pwd",
    r"signature", r"sig", r"x-amz-signature", r"x-amz-credential", r"credential", r"auth", r"jwt",
)
_QUERY = re.compile(r"(?i)((?:^|(?<=[?&;#\s\"'(]))(?:" + "|".join(_SECRET_NAMES) + r")=)([^&#\s\"'<>)]+)")
# Header values, as text ("Authorization: Bearer x") or as a dict repr ("'Authorization': 'Bearer x'").
_AUTH_HEADER = re.compile(r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)([^'\"\r\n,}]+)")
# A credential after its scheme: at least 8 characters with a digit or one of + / = in them, so that
# prose ("basic checks") is left alone.
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)(\s+)(?=[A-Za-z0-9._~+/=-]*[0-9+/=])[A-Za-z0-9._~+/=-]{8,}")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact this exact value (and its percent-decoded form) wherever it appears from now on.

    Values shorter than 6 characters are ignored: masking them would mangle ordinary text (the
    patterns above still catch them in their usual places)."""
    if not value:
        return
    with _lock:
        for v in {str(value), unquote(str(value))}:
            if len(v) >= 6:
                _secrets.add(v)


def register_url_secrets(url: str) -> None:
    """Register the password of a URL's user-info (or the user-info itself when it has no password:
    then it is usually a token, as in https://<token>@host/). A user name is not a secret."""
    m = re.match(r"(?i)^[a-z][a-z0-9+.-]*://([^/?#\s@]*)@", str(url).strip())
    if m:
        user, colon, password = m.group(1).partition(":")
        register_secret(password if colon else user)


def redact(text) -> str:
    """`text` (converted to str) with credentials masked; see the module docstring."""
    if text is None:
        return ""
    s = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in s:
            s = s.replace(secret, MASK)
    s = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", s)
    s = _QUERY.sub(lambda m: m.group(1) + MASK, s)
    s = _AUTH_HEADER.sub(lambda m: m.group(1) + _auth_value(m.group(2)), s)
    s = _SCHEME_CREDENTIAL.sub(lambda m: m.group(1) + m.group(2) + MASK, s)
    return s


def _auth_value(value: str) -> str:
    """`Bearer abc` -> `Bearer ***`; a bare value -> `***`."""
    scheme, sep, _ = value.strip().partition(" ")
    return f"{scheme} {MASK}" if sep else MASK


def redact_obj(obj):
    """A copy of a JSON-like object (dicts, lists, strings, numbers) with every string redacted."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(k) if isinstance(k, str) else k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


class RedactingFilter(logging.Filter):
    """A logging filter that renders a record's message once and redacts it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logging's problem, not ours
            return True
        record.msg, record.args = redact(message), None
        return True


_FILTER = RedactingFilter()


def install_log_filter(*loggers: str) -> None:
    """Attach the redacting filter to these loggers (records created by them, not their children)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
