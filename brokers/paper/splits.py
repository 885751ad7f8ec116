"""Splitting a fill into executions, as a real broker's book does."""

from __future__ import annotations

from decimal import Decimal


def split_quantity(quantity: Decimal, parts: int) -> list[Decimal]:
    """`parts` positive quantities of near-equal size (larger first, differing by one
    unit of the last decimal place) that sum exactly to `quantity`. They use the
    quantity's own decimals (an integral quantity splits into whole units) and finer
    ones only when it has fewer units than `parts`. One part is `quantity` itself."""
    if parts < 1:
        raise ValueError(f"parts must be 1 or more, not {parts}")
    if not quantity.is_finite() or quantity <= 0:
        raise ValueError(f"only a positive quantity can be split, not {quantity}")
    if parts == 1:
        return [quantity]
    # Integer arithmetic throughout: exact whatever the context's precision.
    _, digits, own = quantity.as_tuple()
    assert isinstance(own, int)  # finite
    coefficient = int("".join(map(str, digits)))
    while own < 0 and coefficient % 10 == 0:  # 10.00 has the units of 10
        coefficient //= 10
        own += 1
    exponent = min(own, 0)
    units = coefficient * 10 ** (own - exponent)
    while units < parts:
        exponent -= 1
        units *= 10
    base, extra = divmod(units, parts)
    return [_decimal(base + (1 if i < extra else 0), exponent) for i in range(parts)]


def _decimal(coefficient: int, exponent: int) -> Decimal:
    return Decimal((0, tuple(int(d) for d in str(coefficient)), exponent))
