"""The shared language of the service: plain dataclasses and enums, no I/O.

Money, prices and quantities of orders, fills and accounts are `Decimal`; market
data travels as floats for speed and becomes `Decimal` where a signal is sized.
All timestamps are timezone-aware UTC datetimes or integer nanoseconds since the epoch.
"""
