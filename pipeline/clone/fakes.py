"""Realistic fakes, the same for the same input everywhere: Faker seeded from the value's keyed hash.

The server computes the HMAC-SHA256 of each original value (as it does for ``hash``; the value never leaves it)
and the engine reads only that digest; :func:`fake` seeds a Faker generator of the rule's locale with the
digest's first 64 bits and asks it for the rule's kind. One e-mail, name or address therefore fakes alike in
every table, every chunk and every run with the same key (and the same Faker: it is pinned in pyproject.toml,
because a new release may draw other values). A column with a unique key gets the digest's first ``length``
hex characters after the fake (``山田 太郎 3fa2c1d0``): the preflight checks those prefixes for collisions as it
checks a hash's, so the fakes stay unique too. A fake longer than its column is cut to fit, before the suffix.

Faker is imported here only, on the first fake: the other Lambdas never load it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pipeline.clone.errors import CloneError

__all__ = ["fake"]

# kind → (Faker method, the method of the en_US locale where it has another name)
_METHODS = {
    "name": "name",
    "first_name": "first_name",
    "last_name": "last_name",
    "kana_name": "kana_name",
    "first_kana_name": "first_kana_name",
    "last_kana_name": "last_kana_name",
    "company": "company",
    "address": "address",
    "prefecture": "prefecture",
    "city": "city",
    "street_address": "street_address",
    "postcode": "postcode",
}
_EN_US = {"prefecture": "state"}


@cache
def _faker(locale: str) -> Any:
    try:
        from faker import Faker
    except ImportError:  # pragma: no cover - a package built without it
        raise CloneError(
            "the `fake` rules need Faker, which this installation lacks",
            hint="pip install the project again (Faker is a dependency of the clone's masking)",
        ) from None
    return Faker(locale)


def fake(kind: str, locale: str, digest: str, *, suffix: int = 0, max_length: int | None = None) -> str:
    """The fake ``kind`` for the value whose keyed hash (hex) is ``digest``; ``suffix`` hex characters of the
    digest are appended (unique columns); the result fits ``max_length`` characters."""
    generator = _faker(locale)
    generator.seed_instance(int(digest[:16], 16))
    if kind == "street_address" and locale == "ja_JP":  # Faker's ja_JP street_address is an English pattern
        value = f"{generator.town()}{generator.chome()}{generator.ban()}{generator.gou()}"
    else:
        method = _EN_US.get(kind, _METHODS[kind]) if locale == "en_US" else _METHODS[kind]
        value = str(getattr(generator, method)()).replace("\n", ", ")
    tail = f" {digest[:suffix]}" if suffix else ""
    if max_length is not None and len(value) + len(tail) > max_length:
        value = value[: max(0, max_length - len(tail))].rstrip()
    return value + tail
