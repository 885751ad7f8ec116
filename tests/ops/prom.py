"""Reading a Prometheus endpoint the way Prometheus does, and the metric names a
PromQL expression reads (for checking rule files and dashboards against it)."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# The sample names each family type is exposed under (text format 0.0.4).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "gauge": ("",),
    "untyped": ("",),
    "unknown": ("",),
}


@dataclass(frozen=True)
class Scrape:
    """One scrape: every sample, and the names of every family it declared."""

    samples: tuple[Sample, ...]
    names: frozenset[str]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample `name` whose labels include `labels`."""
        found = [s for s in self.select(name, **labels)]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples, not 1: {found}"
        return found[0].value

    def select(self, name: str, **labels: str) -> list[Sample]:
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample `name` whose labels include `labels` (0 if none)."""
        return sum(s.value for s in self.select(name, **labels))


def parse(text: str) -> Scrape:
    families = list(text_string_to_metric_families(text))
    names = {family.name + suffix for family in families for suffix in _SUFFIXES[family.type]}
    samples = tuple(s for family in families for s in family.samples)
    return Scrape(samples, frozenset(names | {s.name for s in samples}))


def scrape(port: int, host: str = "127.0.0.1") -> Scrape:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        return parse(answer.read().decode())


# PromQL words that are not metric names where an identifier may stand.
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+")
# An identifier that is not part of a number (1e3, 0.5) or of another word.
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings,
    label matchers, ranges, grouping clauses, function calls and keywords are
    taken out."""
    text = _STRING.sub(" ", expression)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    return {
        match.group(1)
        for match in _IDENTIFIER.finditer(text)
        if match.group(2) is None and match.group(1) not in _KEYWORDS
    }


def all_metric_names(expressions: Iterable[str]) -> set[str]:
    return {name for expression in expressions for name in metric_names(expression)}
