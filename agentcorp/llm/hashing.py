"""Canonical request hashing: the key decision replay matches recorded model calls on.

Image data URLs are replaced by the sha256 of their decoded bytes, so two requests with the
same pixels hash the same however the base64 was wrapped, and recordings need not keep them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "canonical_request_hash", "redact_images"]

_DATA_PREFIX = "data:"


def _image_digest(url: str) -> str | None:
    """``sha256:<hex>`` of a base64 data URL's bytes, or None if it is not one."""
    if not url.startswith(_DATA_PREFIX):
        return None
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        return None
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raw = payload.encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def redact_images(value: Any) -> Any:
    """A deep copy of a request body with every base64 data URL replaced by its digest."""
    if isinstance(value, dict):
        return {k: redact_images(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_images(v) for v in value]
    if isinstance(value, str):
        digest = _image_digest(value)
        return value if digest is None else digest
    return value


def canonical_json(body: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, images replaced by their digests."""
    return json.dumps(
        redact_images(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def canonical_request_hash(body: dict[str, Any]) -> str:
    """Hex sha256 of ``canonical_json(body)``."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()
