"""Exact arithmetic for the journal: a Decimal context under which sums and products never round, and the
one rule for giving out a Fraction (exact when it terminates, else 10 decimal places, half-even).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from functools import wraps
from typing import Any, TypeVar

# Sums and products of Decimals are exact under this context; nothing divides under it (a non-terminating
# quotient at this precision would exhaust memory): divisions go through Fraction.
EXACT_CONTEXT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
ZERO = Decimal(0)
RATIO_PLACES = 10

_F = TypeVar("_F", bound=Callable[..., Any])


def exact(function: _F) -> _F:
    """Run `function` with exact Decimal addition and multiplication (the default context rounds at 28)."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with decimal.localcontext(EXACT_CONTEXT):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def terminating(value: Fraction) -> Decimal | None:
    """The exact Decimal of a Fraction with a finite decimal expansion, else None."""
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    if denominator != 1:
        return None
    places = max(twos, fives)
    return Decimal(f"{value.numerator * (10**places // value.denominator)}E-{places}")


def simplest(value: Fraction) -> Decimal | Fraction:
    """A Decimal when exact (Decimal arithmetic is much faster), else the Fraction itself."""
    exact = terminating(value)
    return value if exact is None else exact


def fraction_to_decimal(value: Fraction | int) -> Decimal:
    """Exact when the value has a finite decimal expansion, else rounded half-even to 10 decimal places."""
    value = Fraction(value)
    exact = terminating(value)
    if exact is not None:
        return exact
    return Decimal(f"{round(value * 10**RATIO_PLACES)}E-{RATIO_PLACES}")


def ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    if not denominator:
        return None  # a ratio with a zero denominator is null
    return fraction_to_decimal(Fraction(numerator) / Fraction(denominator))
