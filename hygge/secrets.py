"""Keeping passwords, and values too long to read, out of messages, logs, queues and
dashboards.

Both patterns run in linear time: a scheme may only start where a word starts (a lookbehind),
so a long run of letters is scanned once, not once per position.
"""

from __future__ import annotations

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
