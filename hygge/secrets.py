"""Keeping passwords, and values too long to read, out of messages, logs, queues and
dashboards.

Both patterns run in linear time: a scheme may only start where a word starts (a lookbehind),
so a long run of letters is scanned once, not once per position.
"""

from __future__ import annotations

import logging
import re

_URL_PASSWORD = re.compile(
    r"(?<![a-zA-Z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)"
    r"(?P<user>[^:/@\s]*):(?P<pw>[^\s/]*)@"
)
# The value runs to the next `&` or space; closing punctuation right before that (the `)` of
# "(postgresql://h/db?password=x)") belongs to the text around the URL, not to the secret
# (bounded, so a value of a million dots is still scanned in linear time).
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>[?&](?:password|passwd|pwd|secret|token|access_key)=)"
    r"(?P<value>[^&\s]*?)(?=[)\]}'\",;.]{0,4}(?:[&\s]|$))"
)
MAX_SHOWN = 2000  # characters of a value an error message prints back


def mask_url(text: str) -> str:
    """`postgresql://u:secret@h/db` -> `postgresql://u:***@h/db`, anywhere in `text`."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}***", text)


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """`text`, or its first `limit` characters and a note saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters, truncated)"


# -- values echoed back in messages (pydantic's "got ...") ---------------------------------

# Setting names whose values are secrets wherever they stand (`storage_options` keys
# included: `aws_secret_access_key`, `account_key`, `sas_token`, `client_secret`, ...).
_SECRET_KEY = re.compile(r"(?i)(password|passwd|pwd|secret|token|account_key|access_key)(?!_id)")
# Settings whose whole value may hold secrets (a mapping of credentials, a URL).
_SECRET_HOLDERS = frozenset({"storage_options", "connection"})
_VARIABLE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$")


def secret_key(path: tuple[object, ...]) -> bool:
    """Does a setting at `path` (e.g. ('storage_options', 'aws_secret_access_key')) hold a
    secret, so that its value is never shown?"""
    names = [p for p in path if isinstance(p, str)]
    return any(n in _SECRET_HOLDERS or _SECRET_KEY.search(n) for n in names)


def shown(value: object, path: tuple[object, ...] = ()) -> str:
    """`value` as an error message may echo it: nothing of a secret setting, URL passwords
    masked, secret keys of a mapping hidden, clipped."""
    if secret_key(path) and not (isinstance(value, str) and _VARIABLE.match(value)):
        return "(value hidden: it may hold a secret)"
    return clip(mask_url(repr(_hide_secret_keys(value))), 200)


def _hide_secret_keys(value: object) -> object:
    if isinstance(value, dict):
        return {k: "***" if secret_key((k,)) else _hide_secret_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide_secret_keys(v) for v in value]
    return value


def mask_values(text: str, values: dict[str, str]) -> str:
    """`text` with each value of `values` (variable name -> its value) written as `${NAME}`:
    what `${VAR}` resolved to never reaches a message (however a library quoted it)."""
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
        if len(value) >= 4:  # shorter is no secret, and would mangle ordinary words
            text = text.replace(value, f"${{{name}}}")
    return mask_url(text)


# -- literal secrets in flows.yml ------------------------------------------------------------


def literal_secrets(value: object, path: tuple[object, ...] = ()) -> list[str]:
    """Where `value` (a raw flow, `${VAR}` unresolved) holds a secret written out: a URL
    with a password, or a secret setting whose value is not a `${VAR}`. Such a flow must not
    travel on a queue, where anyone reading Redis or Flower would see it."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and secret_key((k,)) and k not in _SECRET_HOLDERS:
                if v and not _VARIABLE.match(v):
                    found.append(".".join(map(str, (*path, k))))
                continue
            found += literal_secrets(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += literal_secrets(v, (*path, i))
    elif isinstance(value, str) and _written_password(value):
        found.append(".".join(map(str, path)))
    return found


def _written_password(text: str) -> bool:
    """A URL password or `?password=` value that is text, not a `${VAR}`."""
    for m in _URL_PASSWORD.finditer(text):
        if m["pw"] and not _VARIABLE.match(m["pw"]):
            return True
    # the query pattern leaves a closing `}` to the text around it: `${X` is a variable too
    return any(
        m["value"] and not _VARIABLE.match(m["value"] + "}") and not _VARIABLE.match(m["value"])
        for m in _QUERY_SECRET.finditer(text)
    )


# -- logs --------------------------------------------------------------------------------------


class MaskingFilter(logging.Filter):
    """Masks URL passwords in every record a handler writes, its traceback included (a
    driver's exception may quote the URL it was given)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it, unmasked text aside
            message = str(record.msg)
        record.msg, record.args = mask_url(message), None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = mask_url("".join(traceback.format_exception(record.exc_info[1])))
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask_url(record.exc_text)
        return True


def mask_logs(logger: logging.Logger | None = None) -> None:
    """Put a MaskingFilter on every handler of `logger` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
