"""Masking (hygge/secrets.py): linear in the text's length, exact about what it hides."""

from __future__ import annotations

import time

import pytest

from hygge.secrets import clip, mask_url


def test_clip_leaves_short_text_alone():
    assert clip("short") == "short"
    assert clip("abcdef", 3) == "abc... (6 characters, truncated)"


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "a:" * 500_000,
        "a://" * 250_000,
        "x://u:" + "p" * 1_000_000,
        "?password=" + "." * 1_000_000,
        "?password=" + ")a" * 500_000,
        "postgresql://u:pw@h/db?password=s " * 30_000,
    ],
)
def test_masking_is_linear(text):
    start = time.perf_counter()
    masked = mask_url(text)
    assert time.perf_counter() - start < 2  # was quadratic: 35 s for 160 KB of letters
    assert ":pw@" not in masked and "=s " not in masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("(postgresql://h/db?password=secret)", "(postgresql://h/db?password=***)"),
        ("x?password=a)b&y=1", "x?password=***&y=1"),
        ("'mysql://h/d?pwd=s3', next", "'mysql://h/d?pwd=***', next"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("see postgresql://u:secret@h:5/db.", "see postgresql://u:***@h:5/db."),
        ("(mysql://root:pw@h/db)", "(mysql://root:***@h/db)"),
    ],
)
def test_masking_keeps_the_text_around_the_secret(text, masked):
    assert mask_url(text) == masked


def test_literal_secrets_finds_passwords_written_out_not_variables():
    from hygge.secrets import literal_secrets

    raw = {
        "home": {"connection": "postgresql://u:pw@h/db", "table": "t"},
        "store": {
            "connection": "postgresql://u:${PW}@h/db?password=${X}",
            "storage_options": {
                "aws_secret_access_key": "abc",
                "aws_access_key_id": "AKIA",  # an id, not a secret
                "session_token": "${TOKEN}",
                "endpoint": "http://minio:9000",
            },
        },
        "other": ["mysql://root@h/db", "mysql://r:x@h/db"],
    }
    assert literal_secrets(raw) == [
        "home.connection",
        "store.storage_options.aws_secret_access_key",
        "other.1",
    ]


def test_shown_hides_secret_settings_and_masks_the_rest():
    from hygge.secrets import shown

    assert shown("s3cr3t", ("storage_options",)) == "(value hidden: it may hold a secret)"
    assert shown("${S3SECRET}", ("storage_options",)) == "'${S3SECRET}'"
    assert shown(["x"], ("storage_options", "secret")).startswith("(value hidden")
    assert shown({"password": "p", "table": "t"}) == "{'password': '***', 'table': 't'}"
    assert shown("postgresql://u:pw@h/db", ("home",)) == "'postgresql://u:***@h/db'"


def test_mask_values_names_the_variable_instead_of_its_value():
    from hygge.secrets import mask_values

    text = "got 'Sekr3tPw' and 'id' from postgresql://u:x@h/db"
    masked = mask_values(text, {"SECRET": "Sekr3tPw", "SHORT": "id"})
    assert masked == "got '${SECRET}' and 'id' from postgresql://u:***@h/db"


def test_masking_filter_masks_messages_arguments_and_tracebacks():
    import io
    import logging

    from hygge.secrets import MaskingFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    log = logging.getLogger("hygge.test.masking")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("connecting to %s", "postgresql://u:pw1@h/db")
        try:
            raise OSError("GET http://user:pw2@host/bucket failed")
        except OSError as exc:
            log.error("failed", exc_info=exc)
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "pw1" not in text and "pw2" not in text, text
    assert "postgresql://u:***@h/db" in text and "http://user:***@host" in text
