"""Keeping secrets out of logs, errors and the database.

Every text podium records about a request passes through a ``Redactor``: the connector's
own secret values are masked wherever they appear, and so are query parameters whose
names say they hold credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
_SENSITIVE_PARAM = re.compile(
    r"(?i)([?&](?:[a-z_\-]*(?:token|secret|password|passwd|api[_\-]?key|apikey|signature|"
    r"sig|auth|key|credential)[a-z_\-]*)=)[^&#\s]*"
)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted(
            {*self._secrets, *(s for s in secrets if s and len(s) >= 3)}, key=len, reverse=True
        )

    def contains_secret(self, text: str) -> bool:
        """Whether ``text`` holds any secret this redactor knows by value."""
        return any(secret in text for secret in self._secrets)

    def tree(self, value: Any) -> Any:
        """Redact every string inside nested dicts and lists (samples kept for checks)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.tree(v) for v in value]
        return value

    def mask_values(self, text: str) -> str:
        """``text`` with every secret this redactor knows by value masked, and nothing else
        (a cassette keeps response data as it came: see ``http/_masking.py``)."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __call__(self, text: str) -> str:
        text = _SENSITIVE_PARAM.sub(rf"\1{MASK}", self.mask_values(text))
        return _URL_PASSWORD.sub(rf"\1{MASK}@", text)
