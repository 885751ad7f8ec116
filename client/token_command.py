"""`tradectl token create|list|revoke`: the API keys of the tokens file
(TRADING_TOKENS_FILE), edited on this machine, no service needed.

`create` prints the new token once, on standard output, and stores only its
SHA-256. The running service reads the file again on its next call (or on
SIGHUP), so a key is usable, or refused, at once, with no restart: rotate a key
by creating the new one, moving the program to it, then revoking the old one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from server.auth import ROLES
from server.tokens import (
    TokenEntry,
    TokensFileError,
    add_token,
    existing_entries,
    parse_expiry,
    revoke,
    write_tokens_file,
)

EXIT_OK = 0
EXIT_FAILED = 1


def add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file",
        type=Path,
        default=os.environ.get("TRADING_TOKENS_FILE") or None,
        help="the tokens file (default: TRADING_TOKENS_FILE)",
    )


def add_create_arguments(parser: argparse.ArgumentParser) -> None:
    add_file_argument(parser)
    parser.add_argument("--principal", required=True, help="who the key is for (audit log name)")
    parser.add_argument(
        "--roles",
        required=True,
        help=f"comma-separated, of {', '.join(sorted(ROLES))}",
    )
    parser.add_argument(
        "--expires", help="a duration (30d, 12h, 90m, 2w) or an ISO 8601 date or time"
    )


def add_revoke_arguments(parser: argparse.ArgumentParser) -> None:
    add_file_argument(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("key_id", nargs="?", help="the key's id, as `tradectl token list` shows")
    which.add_argument("--principal", help="revoke every live key of this principal")


def run_create(args: argparse.Namespace, out: TextIO, as_json: bool) -> int:
    def change(entries: list[TokenEntry], now: datetime) -> tuple[list[TokenEntry], int]:
        roles = frozenset(r.strip() for r in args.roles.split(",") if r.strip())
        if not roles or not roles <= ROLES:
            raise TokensFileError(f"--roles must be a comma-separated list of {sorted(ROLES)}")
        expires = parse_expiry(args.expires, now) if args.expires else None
        updated, entry, token = add_token(entries, args.principal, roles, now, expires)
        if as_json:
            print(json.dumps({**_as_dict(entry, now), "token": token}), file=out)
        else:
            print(token, file=out)
            print(
                f"key {entry.id} for {entry.principal} ({', '.join(sorted(entry.roles))}), "
                f"expires {_when(entry.expires) or 'never'}; the token is shown only now",
                file=sys.stderr,
            )
        return updated, EXIT_OK

    return _edit(args, change)


def run_revoke(args: argparse.Namespace, out: TextIO, as_json: bool) -> int:
    def change(entries: list[TokenEntry], now: datetime) -> tuple[list[TokenEntry], int]:
        updated, revoked = revoke(
            entries, now, key_id=args.key_id or "", principal=args.principal or ""
        )
        for entry in revoked:
            if as_json:
                print(json.dumps(_as_dict(entry, now)), file=out)
            else:
                print(f"revoked key {entry.id} of {entry.principal}", file=out)
        return updated, EXIT_OK

    return _edit(args, change)


def run_list(args: argparse.Namespace, out: TextIO, as_json: bool) -> int:
    path = _path(args)
    if path is None:
        return EXIT_FAILED
    now = datetime.now(UTC)
    try:
        entries = existing_entries(path, ROLES)
    except TokensFileError as exc:
        print(f"tradectl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if as_json:
        print(json.dumps([_as_dict(e, now) for e in entries]), file=out)
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table("key", "principal", "roles", "state", "created", "expires", "revoked")
    for e in entries:
        table.add_row(
            e.id,
            e.principal,
            ", ".join(sorted(e.roles)),
            e.state(now),
            _when(e.created),
            _when(e.expires),
            _when(e.revoked),
        )
    Console(file=out, width=None if out.isatty() else 200).print(table)
    return EXIT_OK


Change = Callable[[list[TokenEntry], datetime], tuple[list[TokenEntry], int]]


def _edit(args: argparse.Namespace, change: Change) -> int:
    """Read the file, apply `change`, write it back atomically."""
    path = _path(args)
    if path is None:
        return EXIT_FAILED
    now = datetime.now(UTC)
    try:
        entries = existing_entries(path, ROLES)
        updated, status = change(entries, now)
        write_tokens_file(path, updated)
    except (TokensFileError, OSError) as exc:
        print(f"tradectl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return status


def _path(args: argparse.Namespace) -> Path | None:
    if args.file is None:
        print("tradectl: name the tokens file with --file or TRADING_TOKENS_FILE", file=sys.stderr)
        return None
    return Path(args.file)


def _as_dict(entry: TokenEntry, now: datetime) -> dict[str, object]:
    return {
        "id": entry.id,
        "principal": entry.principal,
        "roles": sorted(entry.roles),
        "state": entry.state(now),
        "created": _when(entry.created) or None,
        "expires": _when(entry.expires) or None,
        "revoked": _when(entry.revoked) or None,
    }


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")
