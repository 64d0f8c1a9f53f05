"""Kubernetes resource quantities (``100m``, ``1.5``, ``128Mi``, ``1e3``) as numbers.

Follows the ``resource.Quantity`` grammar: a signed decimal, then a binary suffix
(Ki, Mi, Gi, Ti, Pi, Ei), a decimal suffix (n, u, m, k, M, G, T, P, E) or an exponent. The
scheduler only adds and compares, so a float is precise enough.
"""

from __future__ import annotations

import re

from syrup import errors

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")


def parse(value: str | int | float, *, where: str = "quantity") -> float:
    """The number a quantity stands for; bad text raises InvalidInput naming ``where``."""
    if isinstance(value, bool):
        raise errors.InvalidInput(f"{value!r} is not a quantity", where=where)
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise errors.InvalidInput(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', not {value!r}",
            where=where,
        )
    number, suffix = float(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return float(number * _BINARY[suffix])
    if suffix[:1] in ("e", "E"):
        return float(number * 10 ** int(suffix[1:]))
    return float(number * _DECIMAL[suffix])
