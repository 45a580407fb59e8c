"""Credentials never leave the process: URLs are redacted before they are printed or stored."""

import re

_PASSWORD = re.compile(r"(?P<head>//[^/@:]*:)[^@/]*@")


def redact(url: str | None) -> str | None:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db`` (also for malformed URLs)."""
    if not url:
        return url
    return _PASSWORD.sub(lambda m: f"{m.group('head')}***@", url)
