"""HMAC-SHA256 signatures over timestamp and body, for incoming webhooks and outgoing job callbacks.

Header format (the same both ways): ``X-Spacegroup-Signature: t=<unix seconds>,v1=<hex hmac>`` where the HMAC
key is the shared secret and the message is ``"<t>." + body``. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Spacegroup-Signature"
DELIVERY_HEADER = "X-Spacegroup-Delivery"


class SignatureError(ValueError):
    """A webhook whose signature is missing, malformed, wrong or too old."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    stamp = int(time.time() if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify(secret: str, body: bytes, header: str | None, tolerance_s: int = 300, now: float | None = None) -> int:
    """Return the signed timestamp, or raise :class:`SignatureError` saying what is wrong."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        raise SignatureError(f"{SIGNATURE_HEADER} must look like t=<unix seconds>,v1=<hex HMAC-SHA256>")
    try:
        stamp = int(parts["t"])
    except ValueError:
        raise SignatureError("the signature timestamp is not an integer") from None
    age = (time.time() if now is None else now) - stamp
    if abs(age) > tolerance_s:
        raise SignatureError(f"the signature timestamp is {abs(age):.0f} s from now; at most {tolerance_s} s allowed")
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts["v1"]):
        raise SignatureError("the signature does not match the body")
    return stamp
