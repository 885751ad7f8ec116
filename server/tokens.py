"""The tokens file (TRADING_TOKENS_FILE): API keys stored as SHA-256 digests,
several per principal, with expiry and revocation, read again whenever it changes.

Format 2, written by `tradectl token create|revoke`:

    {"format": 2, "tokens": [
      {"id": "k1f3a9c2e", "principal": "alice", "roles": ["trader"],
       "sha256": "<hex digest of the whole token>", "created": "2026-12-02T12:00:00Z",
       "expires": "2027-01-01T12:00:00Z" or null, "revoked": null or a time}]}

A token is `tsk_<id>_<43 characters of base64url>`: 256 random bits, plus its id
so that the access log and `tradectl token list` can name a key without showing
it. Only the digest is stored. A plain hash is right for a random 256-bit secret:
a slow password hash would add nothing against guessing and would make every
call an invitation to denial of service.

Format 1, `{"alice": {"token": "...", "roles": [...]}}`, still loads, with a
deprecation warning: its tokens are in the file in plain text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 2
TOKEN_PREFIX = "tsk_"
_ID = re.compile(r"^k[0-9a-f]{8}$")
_TOKEN = re.compile(r"^tsk_(k[0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

INSECURE_TOKENS_FILE_BITS = 0o027
"""Group write or any access by others: whoever has it could read every token or add
one. The owner (and a group, read-only) is all a tokens file should allow."""


class TokensFileError(ValueError):
    """The tokens file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One API key as the file holds it: never the token, only its digest."""

    id: str
    principal: str
    roles: frozenset[str]
    sha256: str
    created: datetime | None = None
    expires: datetime | None = None
    revoked: datetime | None = None

    def usable_at(self, now: datetime) -> bool:
        return self.revoked is None and (self.expires is None or now < self.expires)

    def state(self, now: datetime) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "active"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The id a format-2 token carries, or None for any other text."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def new_token() -> tuple[str, str]:
    """(id, token): a fresh key id and a token of 256 random bits that carries it."""
    key_id = "k" + secrets.token_hex(4)
    return key_id, f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def check_tokens_file_mode(path: Path, *, allow_insecure: bool = False) -> None:
    """Refuse a tokens file that its group may write or others may read or write;
    with `allow_insecure` (TRADING_TOKENS_FILE_ALLOW_INSECURE) only warn, loudly.
    Nothing is checked where file modes mean nothing (Windows)."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise TokensFileError(f"TRADING_TOKENS_FILE {path}: cannot read it: {exc}") from None
    if not mode & INSECURE_TOKENS_FILE_BITS:
        return
    problem = (
        f"TRADING_TOKENS_FILE {path} is mode {mode:o}: "
        f"{'others' if mode & 0o007 else 'its group'} can "
        f"{'read' if mode & 0o004 else 'change'} the tokens"
    )
    if not allow_insecure:
        raise TokensFileError(
            f"{problem}; make it owner-only (chmod 600 {path}), or set "
            "TRADING_TOKENS_FILE_ALLOW_INSECURE=true to accept it anyway"
        )
    log.warning("%s; accepted because TRADING_TOKENS_FILE_ALLOW_INSECURE is set", problem)


def read_tokens_file(
    path: Path, known_roles: frozenset[str], *, allow_insecure: bool = False
) -> list[TokenEntry]:
    """Every entry of the file, usable or not. Raises TokensFileError naming the
    problem, also when the file's mode lets others read it."""
    check_tokens_file_mode(path, allow_insecure=allow_insecure)
    document = _document(path)
    if _is_format_2(document):
        assert isinstance(document, dict)
        if document.get("format") != FORMAT:
            raise TokensFileError(
                f"TRADING_TOKENS_FILE {path}: format {document.get('format')!r} is not known "
                f"(this version reads format {FORMAT} and the older plain-text one)"
            )
        tokens = document.get("tokens")
        if not isinstance(tokens, list):
            raise TokensFileError(f"TRADING_TOKENS_FILE {path}: 'tokens' must be a list")
        entries = [_entry(path, i, raw, known_roles) for i, raw in enumerate(tokens)]
        _check_unique(path, entries)
        return entries
    return _legacy_entries(path, document, known_roles)


def _document(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokensFileError(f"TRADING_TOKENS_FILE {path}: cannot read it: {exc}") from None


def _is_format_2(document: object) -> bool:
    return isinstance(document, dict) and "format" in document


def _entry(path: Path, index: int, raw: object, known_roles: frozenset[str]) -> TokenEntry:
    where = f"TRADING_TOKENS_FILE {path}: tokens[{index}]"
    if not isinstance(raw, dict):
        raise TokensFileError(f"{where}: expected an object")
    key_id, principal, sha = raw.get("id"), raw.get("principal"), raw.get("sha256")
    if not isinstance(key_id, str) or not _ID.match(key_id):
        raise TokensFileError(f"{where}: id must look like k0123abcd")
    if not isinstance(principal, str) or not _PRINCIPAL.match(principal):
        raise TokensFileError(f"{where}: principal must be a name of letters, digits, ._@-")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise TokensFileError(f"{where}: sha256 must be 64 lower-case hex digits")
    return TokenEntry(
        id=key_id,
        principal=principal,
        roles=_roles(where, raw.get("roles"), known_roles),
        sha256=sha,
        created=_time(where, "created", raw.get("created")),
        expires=_time(where, "expires", raw.get("expires")),
        revoked=_time(where, "revoked", raw.get("revoked")),
    )


def _roles(where: str, roles: object, known_roles: frozenset[str]) -> frozenset[str]:
    if (
        not isinstance(roles, list)
        or not roles
        or not all(isinstance(r, str) for r in roles)
        or not set(roles) <= known_roles
    ):
        raise TokensFileError(f"{where}: roles must be a list of {', '.join(sorted(known_roles))}")
    return frozenset(roles)


def _time(where: str, name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
    raise TokensFileError(f"{where}: {name} must be null or an ISO 8601 time with a UTC offset")


def _check_unique(path: Path, entries: Iterable[TokenEntry]) -> None:
    ids: set[str] = set()
    digests: set[str] = set()
    for entry in entries:
        if entry.id in ids:
            raise TokensFileError(f"TRADING_TOKENS_FILE {path}: id {entry.id} appears twice")
        if entry.sha256 in digests:
            raise TokensFileError(
                f"TRADING_TOKENS_FILE {path}: token {entry.id} is the same key as another"
            )
        ids.add(entry.id)
        digests.add(entry.sha256)


def _legacy_entries(path: Path, document: object, known_roles: frozenset[str]) -> list[TokenEntry]:
    if not isinstance(document, dict) or not document:
        raise TokensFileError(f"TRADING_TOKENS_FILE {path}: expected an object of principals")
    log.warning(
        "TRADING_TOKENS_FILE %s holds tokens in plain text (the old format), which is "
        "deprecated: create hashed keys with `tradectl token create` and remove these",
        path,
    )
    entries = []
    for name, raw in document.items():
        token = raw.get("token") if isinstance(raw, dict) else None
        if not isinstance(token, str) or len(token) < 16:
            raise TokensFileError(
                f"TRADING_TOKENS_FILE: {name}: token must be at least 16 characters"
            )
        where = f"TRADING_TOKENS_FILE: {name}"
        roles = _roles(where, raw.get("roles") if isinstance(raw, dict) else None, known_roles)
        # A stable id from the digest, so the access log can name the key.
        sha = digest(token)
        entries.append(TokenEntry(id="k" + sha[:8], principal=name, roles=roles, sha256=sha))
    for i, entry in enumerate(entries):
        if any(other.sha256 == entry.sha256 for other in entries[:i]):
            raise TokensFileError(
                f"TRADING_TOKENS_FILE: {entry.principal}: token is shared with another principal"
            )
    return entries


def write_tokens_file(path: Path, entries: Iterable[TokenEntry]) -> None:
    """Replace the file atomically (a reader sees the old file or the new, never a
    half), owner-only from its first byte."""
    document = {"format": FORMAT, "tokens": [_as_json(e) for e in entries]}
    text = json.dumps(document, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _as_json(entry: TokenEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "principal": entry.principal,
        "roles": sorted(entry.roles),
        "sha256": entry.sha256,
        "created": _text(entry.created),
        "expires": _text(entry.expires),
        "revoked": _text(entry.revoked),
    }


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def existing_entries(path: Path, known_roles: frozenset[str]) -> list[TokenEntry]:
    """The file's entries, for a change by `tradectl token`: none if it does not
    exist yet. A plain-text (format 1) file is refused, so that no key is silently
    dropped or rewritten."""
    if not path.exists():
        return []
    if not _is_format_2(_document(path)):
        raise TokensFileError(
            f"{path} is in the old plain-text format; create hashed keys in a new file "
            "with `tradectl token create --file NEW ...` (one per principal), then point "
            "TRADING_TOKENS_FILE at it"
        )
    return read_tokens_file(path, known_roles)


def add_token(
    entries: list[TokenEntry],
    principal: str,
    roles: frozenset[str],
    now: datetime,
    expires: datetime | None,
) -> tuple[list[TokenEntry], TokenEntry, str]:
    """The entries with a new key for `principal`, the new entry, and the token."""
    if not _PRINCIPAL.match(principal):
        raise TokensFileError(
            f"principal {principal!r}: use letters, digits and ._@- (at most 64 characters)"
        )
    if expires is not None and expires <= now:
        raise TokensFileError("the expiry is in the past")
    taken = {e.id for e in entries}
    key_id, token = new_token()
    while key_id in taken:  # 2^32 ids: a collision is rare, never fatal
        key_id, token = new_token()
    entry = TokenEntry(key_id, principal, roles, digest(token), now, expires)
    return [*entries, entry], entry, token


def revoke(
    entries: list[TokenEntry], now: datetime, *, key_id: str = "", principal: str = ""
) -> tuple[list[TokenEntry], list[TokenEntry]]:
    """The entries with the named key (or every key of `principal`) revoked, and
    the ones that this revoked; TokensFileError if nothing matches."""
    matched = [
        e
        for e in entries
        if e.revoked is None
        and ((key_id and e.id == key_id) or (principal and e.principal == principal))
    ]
    if not matched:
        what = f"key {key_id}" if key_id else f"principal {principal}"
        raise TokensFileError(f"no live key matches {what} (see `tradectl token list`)")
    ids = {e.id for e in matched}
    updated = [replace(e, revoked=now) if e.id in ids else e for e in entries]
    return updated, [replace(e, revoked=now) for e in matched]


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS: Mapping[str, str] = {
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
}


def parse_expiry(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `90m`, `2w`, or an ISO 8601 date or time (a date alone means
    its midnight UTC)."""
    match = _DURATION.match(text.strip())
    if match:
        amount = int(match.group(1))
        if amount <= 0:
            raise TokensFileError(f"expiry {text!r} must be in the future")
        try:
            return now + timedelta(**{_UNITS[match.group(2)]: amount})
        except OverflowError:
            raise TokensFileError(f"expiry {text!r} is too far away") from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TokensFileError(
            f"expiry {text!r}: give a duration (30d, 12h, 90m, 2w) or an ISO 8601 date or time"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
