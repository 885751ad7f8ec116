"""Every command in the README runs, exactly as written, so the README cannot drift.

The `sh` and `python` blocks of README.md are read in order. A shell command
runs in bash with `.venv/bin` first on PATH (as after `source
.venv/bin/activate`), in a scratch copy of the repository so that nothing it
writes lands in the checkout; `export` lines carry over to the commands after
them, as in a terminal, until an `unset`. A command that starts the service
(`make run`) is left running, and the commands after it talk to it, until the
next one replaces it.
A command must exit 0, or with a status its own comment names ("exit 1 if
refused"). A Python block runs as a script with the venv's interpreter.

A command whose comment says "until Ctrl-C" (`tradectl feed alpaca`) runs until
it has printed what it forwards, and is then interrupted as a reader would;
it must end with 0 or 130, the status of an interrupted command.

Commands that need Alpaca run against the tests' fakes of Alpaca's trading and
market-data APIs, with the README's placeholder keys (`PK...`, `...`) as the
fakes' keys: the endpoints are the one thing the test sets that a reader does
not (ALPACA_BASE_URL and friends, whose defaults are Alpaca's own).

Not run: `make test`, which is this suite.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.alpaca_data_server import FakeAlpacaData, bar
from tests.fakes.alpaca_server import FakeAlpaca

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PORT = 50051  # the README's own address
NOT_RUN = ("make test",)
SERVER_COMMAND = re.compile(r"(^|\s)make run\b")
SERVING = re.compile(r"serving trading\.v1\.TradingService on \S+:(\d+)")
COMMAND_TIMEOUT_S = 300
UNTIL_INTERRUPTED = "until Ctrl-C"
INTERRUPTED_EXITS = {0, 130}
FORWARDED = re.compile(r"^[A-Z.]+ +\S+ +close .* #\d+$", re.MULTILINE)  # a feed's bar line
# The README's placeholders, which the fakes take as their keys.
ALPACA_KEY, ALPACA_SECRET = "PK...", "..."

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    language: str
    line: int  # of the opening fence, for the test's name and its failure
    text: str

    @property
    def name(self) -> str:
        return f"README.md:{self.line}:{self.language}"


@dataclass(frozen=True)
class Command:
    line: int
    text: str

    @property
    def allowed_exits(self) -> set[int]:
        """0, and any status the command's comment names as an outcome ("exit 1 if
        refused", "exit 0 pass, 1 not")."""
        comment = self.text.partition(" # ")[2]
        return {0} | {int(n) for n in re.findall(r"\b([1-9])\s+(?:if|not)\b", comment)}


def readme_blocks() -> list[Block]:
    found: list[Block] = []
    language, start = "", 0
    lines: list[str] = []
    for number, line in enumerate(README.read_text().splitlines(), 1):
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence and not language and start == 0:
            language, start, lines = fence.group(1) or "-", number, []
        elif fence and start:
            if language in ("sh", "python"):
                found.append(Block(language, start, "\n".join(lines) + "\n"))
            language, start = "", 0
        elif start:
            lines.append(line)
    return found


def shell_commands(block: Block) -> list[Command]:
    """One command per line, a trailing backslash joining the next line to it."""
    commands: list[Command] = []
    pending, first = "", 0
    for offset, line in enumerate(block.text.splitlines(), 1):
        if not pending:
            first = block.line + offset
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if line.endswith("\\"):
            continue
        text = pending.strip()
        pending = ""
        if text and not text.startswith("#"):
            commands.append(Command(first, text))
    return commands


@dataclass(frozen=True)
class Ran:
    command: Command
    stdout: str
    stderr: str


@dataclass
class Terminal:
    """A shell session of the README's reader: environment, directory, the service."""

    root: Path
    env: dict[str, str]
    market: FakeAlpacaData | None = None
    # The live bars' clock, carried across feeds: each bar is newer than the last
    # one published, since the service refuses a tick older than one it has.
    next_bar: datetime = field(
        default_factory=lambda: (
            datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
        )
    )
    server: subprocess.Popen[bytes] | None = None
    server_log: Path | None = None
    transcript: list[Ran] = field(default_factory=list)

    def run(self, command: Command) -> None:
        text = command.text
        if any(text.split(" #")[0].strip() == skipped for skipped in NOT_RUN):
            return
        exported = re.fullmatch(r"export\s+(.+?)(\s+#.*)?", text)
        if exported:
            for assignment in exported.group(1).split():
                name, _, value = assignment.partition("=")
                self.env[name] = value
            return
        unset = re.fullmatch(r"unset\s+([\w\s]+?)(\s+#.*)?", text)
        if unset:
            for name in unset.group(1).split():
                self.env.pop(name, None)
            return
        if SERVER_COMMAND.search(text.split(" #")[0]):
            self.start_server(command)
            return
        if UNTIL_INTERRUPTED in text.partition(" # ")[2]:
            self.run_until_interrupted(command)
            return
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        self.transcript.append(Ran(command, done.stdout, done.stderr))
        assert done.returncode in command.allowed_exits, (
            f"README.md:{command.line}: `{text}` exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        assert "Traceback" not in done.stderr, f"README.md:{command.line}: {done.stderr}"

    def run_until_interrupted(self, command: Command) -> None:
        """Start a live feed, publish a bar a second for what it subscribed to until
        it prints one it forwarded, then press Ctrl-C (SIGINT)."""
        assert self.market is not None
        out = self.root / f"live-{command.line}.out"
        with out.open("w") as stdout:
            live = subprocess.Popen(
                ["bash", "-c", f"exec {command.text}"],
                cwd=self.root,
                env=self.env,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
            )
        deadline = time.monotonic() + 60
        while not FORWARDED.search(out.read_text()):
            assert live.poll() is None, (
                f"README.md:{command.line}: `{command.text}` stopped ({live.returncode}):\n"
                f"{out.read_text()}\n{live.communicate()[1]}"
            )
            assert time.monotonic() < deadline, (
                f"README.md:{command.line}: `{command.text}` forwarded nothing:\n"
                f"{out.read_text()}\n{_stop(live)}"
            )
            for symbol in sorted(self.market.subscribed_symbols()):
                self.market.push_bar(bar(symbol, self.next_bar, 100.0))
            self.next_bar += timedelta(minutes=1)
            time.sleep(1)
        stderr = _stop(live)
        self.transcript.append(Ran(command, out.read_text(), stderr))
        assert live.returncode in INTERRUPTED_EXITS, (
            f"README.md:{command.line}: `{command.text}` exited {live.returncode} on Ctrl-C\n"
            f"stderr:\n{stderr}"
        )
        assert "Traceback" not in stderr, f"README.md:{command.line}: {stderr}"

    def start_server(self, command: Command) -> None:
        self.stop_server()
        _wait_until_free(PORT)
        self.server_log = self.root / f"server-{command.line}.log"
        with self.server_log.open("wb") as log:
            self.server = subprocess.Popen(
                ["bash", "-c", command.text],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # make and the server, stopped together
            )
        deadline = time.monotonic() + 120
        while not SERVING.search(self.server_log.read_text(errors="replace")):
            assert self.server.poll() is None, (
                f"README.md:{command.line}: `{command.text}` stopped:\n"
                + self.server_log.read_text(errors="replace")
            )
            assert time.monotonic() < deadline, f"README.md:{command.line}: never served"
            time.sleep(0.1)

    def stop_server(self) -> None:
        if self.server is None:
            return
        if self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait(30)
        self.server = None


def _stop(process: subprocess.Popen[str]) -> str:
    """Ctrl-C (SIGINT) for a running process; what it wrote to stderr."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_until_free(port: int) -> None:
    deadline = time.monotonic() + 30
    while not _port_free(port):
        assert time.monotonic() < deadline, f"127.0.0.1:{port} stays taken"
        time.sleep(0.1)


def _scratch_copy(target: Path) -> None:
    """The tracked files, the generated code and the venv (linked): what a reader's
    clone holds after `make run`, without the checkout's own var/ and databases."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    code = REPO / "client" / "trading_sdk" / "v1"
    generated = [p.relative_to(REPO) for p in code.glob("*_pb2*.py*")]
    stamp = (code / ".generated").relative_to(REPO)
    for relative in [Path(t.decode()) for t in tracked if t] + generated + [stamp]:
        source = REPO / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    (target / ".venv").symlink_to(REPO / ".venv")
    # The copy shares the checkout's venv, so `make run` there must never
    # reinstall: that would point the venv's editable install at the copy. Its
    # set-up inputs are made older than the venv's stamp, and its code stamp newer.
    inputs = [target / "pyproject.toml", target / "client" / "pyproject.toml"]
    for source in [*inputs, *(target / "protos").rglob("*.proto")]:
        os.utime(source, (0, 0))
    now = time.time()
    os.utime(target / stamp, (now, now))


@pytest.fixture(scope="module")
def terminal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    if not _port_free(PORT):
        pytest.skip(f"127.0.0.1:{PORT}, the README's address, is taken by another program")
    root = tmp_path_factory.mktemp("readme")
    _scratch_copy(root)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TRADING_", "ALPACA_", "OPENAI_", "DATABASE_URL", "PAPER_"))
    }
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    env["HOME"] = str(root)
    with alpaca_fakes() as (broker, market):
        env |= {
            "ALPACA_BASE_URL": broker.base_url,
            "ALPACA_STREAM_URL": broker.stream_url,
            "ALPACA_DATA_URL": market.rest_url,
            "ALPACA_DATA_STREAM_URL": market.stream_url("iex"),
        }
        session = Terminal(root, env, market)
        yield session
        session.stop_server()


class ReadmeAlpaca(FakeAlpaca):
    key_id = ALPACA_KEY
    secret_key = ALPACA_SECRET


@contextmanager
def alpaca_fakes() -> Iterator[tuple[FakeAlpaca, FakeAlpacaData]]:
    """Alpaca's trading API and its market data, with a week of SPY and QQQ
    minute bars for the README's download."""
    with ReadmeAlpaca() as broker, FakeAlpacaData(ALPACA_KEY, ALPACA_SECRET) as market:
        open_ = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)  # Monday 09:30 New York
        market.add_bars(
            [
                bar(symbol, open_ + timedelta(days=day, minutes=k), base + 0.1 * k)
                for symbol, base in (("SPY", 510.0), ("QQQ", 440.0))
                for day in range(5)
                for k in range(30)
            ]
        )
        yield broker, market


BLOCKS = readme_blocks()


def test_the_readme_has_commands_to_run() -> None:
    assert sum(b.language == "sh" for b in BLOCKS) >= 5
    assert sum(b.language == "python" for b in BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_every_readme_block_runs_as_written(terminal: Terminal, block: Block) -> None:
    if block.language == "sh":
        for command in shell_commands(block):
            terminal.run(command)
        return
    script = terminal.root / f"readme-{block.line}.py"
    script.write_text(block.text)
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), script.name],
        cwd=terminal.root,
        env=terminal.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"


def test_commands_are_read_as_a_reader_types_them() -> None:
    block = Block(
        "sh", 10, "a --x \\\n    --y   # note\n\n# only a comment\nb  # exit 1 if refused\n"
    )
    commands = shell_commands(block)
    assert [(c.line, c.text) for c in commands] == [
        (11, "a --x --y   # note"),
        (15, "b  # exit 1 if refused"),
    ]
    assert commands[1].allowed_exits == {0, 1}
    assert commands[0].allowed_exits == {0}


def _counts(text: str) -> dict[str, str]:
    """`name  value` lines of a printed summary, by name."""
    return dict(re.findall(r"^([a-z][a-z ]+?)\s{2,}([\d,]+)\s*$", text, re.MULTILINE))


def test_the_readme_stream_example_trades_and_prints_what_the_readme_shows(
    terminal: Terminal,
) -> None:
    """Runs after every block (tests run in file order): the stream under the
    event clock and the bundled symbols trades, with the README's own figures."""
    streamed = [
        ran
        for ran in terminal.transcript
        if ran.command.text.startswith("tradectl stream client/data/daily_bars.csv.gz")
        and "Streamed" in ran.stdout
        and "warning" not in ran.stderr
    ]
    assert streamed, "no README stream ran on a service that trades the file"
    shown = README.read_text().split("Streamed client/data/daily_bars.csv.gz", 1)[1]
    shown_counts = _counts(shown.split("```", 1)[0])
    counts = _counts(streamed[-1].stdout)
    assert int(counts["orders"].replace(",", "")) > 0
    for name in ("events accepted", "signals", "approvals", "rejections", "orders"):
        assert counts[name] == shown_counts[name], name


def test_the_readme_alpaca_example_trades_on_the_fake_alpaca(terminal: Terminal) -> None:
    """Runs after every block: the service the README starts with TRADING_BROKER=alpaca
    reached the fake's account, and the live feed forwarded bars to it."""
    feeds = [ran for ran in terminal.transcript if ran.command.text.startswith("tradectl feed")]
    assert len(feeds) == 3
    assert all(FORWARDED.search(ran.stdout) for ran in feeds)
    status = [
        ran
        for ran in terminal.transcript
        if ran.command.line > feeds[-1].command.line
        and ran.command.text.startswith("tradectl status")
    ]
    assert status, "no tradectl status after the Alpaca example"
    assert ReadmeAlpaca.account_number in status[0].stdout
    assert "alpaca" in status[0].stdout
