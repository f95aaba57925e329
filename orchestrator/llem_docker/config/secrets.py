"""Refuse anything that looks like a credential in a config file.

Secrets (HF_TOKEN and friends) come from the environment only. The offending value is never
echoed back, so the error message itself cannot leak it.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from llem_docker.config.yamlsrc import Document, Key, format_key
from llem_docker.errors import ConfigError

_SECRET_WORDS = {
    "token",
    "secret",
    "secrets",
    "password",
    "passwd",
    "apikey",
    "credential",
    "credentials",
    "auth",
}
_VALUE_PATTERNS = (
    re.compile(r"^hf_[A-Za-z0-9]{20,}$"),  # Hugging Face access token
    re.compile(r"^(ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{20,}$"),  # GitHub tokens
    re.compile(r"^sk-[A-Za-z0-9_-]{20,}$"),  # API keys of the sk- family
)


def key_looks_secret(name: str) -> bool:
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    # "token" names a credential at the end of a key (hf_token, token), not inside one: an
    # engine's eos_token_id or pad_token_id is a vocabulary id (engine_args take them)
    inner = {"token"}
    if any(
        w in _SECRET_WORDS and (w not in inner or i == len(words) - 1) for i, w in enumerate(words)
    ):
        return True
    return any(a == "api" and b == "key" for a, b in itertools.pairwise(words))


def value_looks_secret(value: str) -> bool:
    value = value.strip()
    return any(p.match(value) for p in _VALUE_PATTERNS)


def check_no_secrets(doc: Document) -> None:
    _check(doc.data, (), doc)


def _check(data: Any, key: Key, doc: Document) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            child = (*key, str(k))
            if key_looks_secret(str(k)):
                _fail(doc, child, "looks like a credential key")
            _check(v, child, doc)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _check(v, (*key, i), doc)
    elif isinstance(data, str) and value_looks_secret(data):
        _fail(doc, key, "holds a value that looks like a credential (the value is not shown)")


def _fail(doc: Document, key: Key, what: str) -> None:
    raise ConfigError(
        f"{what}; config files must never hold secrets",
        source=Path(doc.path),
        key=format_key(key),
        line=doc.line(key),
        fix="delete it from the file and export it in the environment instead "
        "(e.g. `export HF_TOKEN=...`); llem-docker passes HF_TOKEN to containers itself",
    )
