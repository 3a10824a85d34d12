"""A real Kannel 1.4.5 for the tests: bearerbox, smsbox, and fakesmsc as the phones.

``KannelGateway`` writes a ``kannel.conf`` in a temporary directory — a core
group and a ``fake`` SMSC of its own, then the ``smsbox``, ``sendsms-user``
and ``sms-service`` groups **copied from the README** (the ports, the
service's address and the secrets substituted) — and starts ``bearerbox`` and
``smsbox`` on free loopback ports. ``Phones`` drives ``fakesmsc``: a line on
its stdin is a message from a phone (``sender receiver text|ucs2 data``), and
each message Kannel sends to a phone is printed as ``Got message N: <from to
type data>`` (UCS-2 as url-encoded UTF-16BE, concatenated parts with their UDH).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FAKESMSC_CANDIDATES = (
    "/usr/lib/kannel/test/fakesmsc",
    "/usr/libexec/kannel/test/fakesmsc",
)
SECTION = "## SMS through Kannel"
# What the README's configuration says, replaced by the test's values.
README_SERVICE = "127.0.0.1:8080"
README_SECRET = "CHANGE-ME-gateway-secret"
README_SENDSMS_PASSWORD = "CHANGE-ME-sendsms-password"
README_SMSBOX_PORT = "13001"
README_SENDSMS_PORT = "13013"
README_LOG = "/var/log/kannel/smsbox.log"
README_QUEUE_DELAY = "http-queue-delay = 5"
ADMIN_PASSWORD = "test-admin"
SENDSMS_USER = "ussd-service"
#: The gateway secret of the service under test (Kannel presents it from its URLs).
SECRET = "kannel-test-secret-0123"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
# fakesmsc reads its socket only between lines on stdin (or after 1 s of
# silence): an empty line this often makes it print what Kannel sent at once.
POKE_INTERVAL_S = 0.05
_GOT = re.compile(r"Got message \d+: <(\S+) (\S+) (text|ucs-2|data|udh) (.*)>$")
_SENT = re.compile(r"fakesmsc: sent message (\d+)")


def binary(name: str) -> str:
    """The path of a Kannel program (the test fails, never skips, without it)."""
    if name == "fakesmsc":
        for candidate in FAKESMSC_CANDIDATES:
            if Path(candidate).exists():
                return candidate
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise AssertionError(
            f"Kannel's {name} is missing: install the Debian packages kannel and "
            "kannel-extras (`make test` does it when run as root)"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def readme_blocks() -> list[str]:
    """The fenced ``ini`` blocks of the README's Kannel section, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```ini\n(.*?)```", section, flags=re.DOTALL)


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the README's Kannel configuration no longer has {old!r}"
    return text.replace(old, new)


@dataclass
class KannelGateway:
    """bearerbox + smsbox with a fake SMSC, configured as the README says."""

    workdir: Path
    service_port: int
    secret: str
    sendsms_password: str = "sendsms-test-pw"
    convention: str = "get"  # "get": the README's get-url; "post": its post-url variant
    admin_port: int = field(default_factory=free_port)
    smsbox_port: int = field(default_factory=free_port)
    smsc_port: int = field(default_factory=free_port)
    sendsms_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    @property
    def config_file(self) -> Path:
        return self.workdir / "kannel.conf"

    def config(self) -> str:
        """The test's core group and fake SMSC, then the README's groups."""
        blocks = readme_blocks()
        assert len(blocks) >= 3, "the README's Kannel section lost its configuration blocks"
        core_lines, groups, post_variant = blocks[0], blocks[1], blocks[2]
        groups = _replace(groups, README_SERVICE, f"127.0.0.1:{self.service_port}")
        groups = _replace(groups, README_SECRET, self.secret)
        groups = _replace(groups, README_SENDSMS_PASSWORD, self.sendsms_password)
        groups = _replace(
            groups, f"bearerbox-port = {README_SMSBOX_PORT}", f"bearerbox-port = {self.smsbox_port}"
        )
        groups = _replace(
            groups, f"sendsms-port = {README_SENDSMS_PORT}", f"sendsms-port = {self.sendsms_port}"
        )
        groups = _replace(groups, README_LOG, str(self.workdir / "smsbox.log"))
        # Kannel's retry comes after a second here, not five.
        groups = _replace(groups, README_QUEUE_DELAY, "http-queue-delay = 1")
        if self.convention == "post":
            get_url = re.search(r"^get-url = .*$", groups, flags=re.MULTILINE)
            assert get_url is not None, "the README's sms-service lost its get-url"
            post = _replace(post_variant, README_SERVICE, f"127.0.0.1:{self.service_port}")
            post = _replace(post, README_SECRET, self.secret)
            groups = groups.replace(get_url.group(0), post.strip())
        core_lines = _replace(
            core_lines, f"smsbox-port = {README_SMSBOX_PORT}", f"smsbox-port = {self.smsbox_port}"
        )
        core = (
            "group = core\n"
            f"admin-port = {self.admin_port}\n"
            f"admin-password = {ADMIN_PASSWORD}\n"
            'admin-allow-ip = "127.0.0.1"\n'
            'box-allow-ip = "127.0.0.1"\n'
            f'log-file = "{self.workdir / "bearerbox.log"}"\n'
            "log-level = 0\n"
            f"{core_lines.strip()}\n"
            "\n"
            "group = smsc\n"
            "smsc = fake\n"
            "smsc-id = fake\n"
            f"port = {self.smsc_port}\n"
            'connect-allow-ip = "127.0.0.1"\n'
            "\n"
        )
        return core + groups

    def start(self) -> None:
        """Start bearerbox, then smsbox; wait until both listen."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config(), encoding="utf-8")
        self._spawn("bearerbox")
        self._wait(lambda: _listening(self.smsbox_port), "bearerbox listens for smsbox")
        self._spawn("smsbox")
        self._wait(lambda: _listening(self.sendsms_port), "smsbox serves sendsms")

    def _spawn(self, name: str) -> None:
        out = (self.workdir / f"{name}.out").open("ab")
        self.processes[name] = subprocess.Popen(
            [binary(name), "-v", "1", str(self.config_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        out.close()

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready():
                return
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited ({proc.returncode}):\n{self.logs()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting until {what}:\n{self.logs()}")

    def status(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password={ADMIN_PASSWORD}"
        with urlopen(url, timeout=2) as resp:
            return str(resp.read().decode("utf-8", "replace"))

    def wait_smsc_online(self) -> None:
        """Until the fake SMSC (fakesmsc) is connected."""

        def online() -> bool:
            try:
                return re.search(r"fake\[fake\].*\(online", self.status()) is not None
            except OSError:
                return False

        self._wait(online, "fakesmsc is connected")

    def stop(self) -> None:
        """Stop smsbox and bearerbox (SIGTERM, then SIGKILL)."""
        for name in ("smsbox", "bearerbox"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)

    def logs(self, lines: int = 40) -> str:
        out = []
        for name in ("bearerbox.log", "smsbox.log", "bearerbox.out", "smsbox.out"):
            path = self.workdir / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(out)

    def access_log(self) -> str:
        """smsbox's log: every HTTP request it made and the answer."""
        path = self.workdir / "smsbox.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass(frozen=True)
class Mt:
    """A message Kannel sent to a phone."""

    sender: str
    receiver: str
    text: str
    coding: str  # "text" or "ucs-2"
    parts: int


def _url_bytes(data: str) -> bytes:
    """Kannel's url-encoding: ``%XX`` escapes and ``+`` for the byte 0x20."""
    return unquote_to_bytes(data.replace("+", " "))


def _decode_parts(datas: list[bytes]) -> tuple[str, str]:
    data = b"".join(datas)
    # UCS-2 of any text has 0x00 or 0x04 high bytes; GSM/UTF-8 text never has them.
    ucs2 = len(data) % 2 == 0 and any(b in (0, 4) for b in data[0::2])
    if ucs2:
        return data.decode("utf-16-be"), "ucs-2"
    return data.decode("utf-8"), "text"


@dataclass
class Phones:
    """fakesmsc: every phone at once; ``send`` an MO, ``expect`` MTs."""

    smsc_port: int
    workdir: Path
    received: list[Mt] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    _sent: int = 0
    _sent_seen: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _parts: dict[tuple[str, str, int], dict[int, bytes]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    _poker: asyncio.Task[None] | None = None
    _log: list[str] = field(default_factory=list)

    async def start(self) -> None:
        """Start fakesmsc (again): it numbers the messages it sends from 1."""
        self._sent = self._sent_seen = 0
        self.proc = await asyncio.create_subprocess_exec(
            binary("fakesmsc"),
            "-H",
            "127.0.0.1",
            "-r",
            str(self.smsc_port),
            "-i",
            "0",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read(), name="fakesmsc-reader")
        self._poker = asyncio.create_task(self._poke(), name="fakesmsc-poker")

    async def _poke(self) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        with contextlib.suppress(ConnectionError):
            while self.proc.returncode is None:
                async with self._changed:
                    self.proc.stdin.write(b"\n")
                    await self.proc.stdin.drain()
                await asyncio.sleep(POKE_INTERVAL_S)

    async def stop(self) -> None:
        if self._poker is not None:
            self._poker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poker
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, STOP_TIMEOUT_S)
        self.proc = None

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode("utf-8", "replace").rstrip("\n")
            self._log.append(text)
            async with self._changed:
                if sent := _SENT.search(text):
                    self._sent_seen = int(sent.group(1))
                elif got := _GOT.search(text):
                    self._got(*got.groups())
                self._changed.notify_all()

    def _got(self, sender: str, receiver: str, kind: str, data: str) -> None:
        if kind == "udh":
            udh_text, _, body = data.partition(" data ")
            udh = _url_bytes(udh_text)
            # Concatenation IE: 00 (8-bit reference) or 08 (16-bit reference).
            if udh[1] == 0x00:
                ref, total, seq = udh[3], udh[4], udh[5]
            else:
                ref, total, seq = udh[3] << 8 | udh[4], udh[5], udh[6]
            parts = self._parts.setdefault((sender, receiver, ref), {})
            parts[seq] = _url_bytes(body)
            if len(parts) == total:
                del self._parts[(sender, receiver, ref)]
                text, coding = _decode_parts([parts[n] for n in sorted(parts)])
                self.received.append(Mt(sender, receiver, text, coding, total))
        elif kind == "ucs-2":
            self.received.append(
                Mt(sender, receiver, _url_bytes(data).decode("utf-16-be"), "ucs-2", 1)
            )
        else:
            self.received.append(Mt(sender, receiver, data, "text", 1))

    async def send(self, sender: str, text: str, *, ucs2: bool = False, to: str = "4555") -> None:
        """A phone texts ``to``; returns once fakesmsc has passed it to Kannel."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        if ucs2:
            line = f"{sender} {to} ucs2 {quote(text.encode('utf-16-be'), safe='')}\n"
        else:
            line = f"{sender} {to} text {text}\n"
        assert "\n" not in line[:-1], "fakesmsc reads one message per line"
        async with self._changed:
            self._sent += 1
            number = self._sent
            self.proc.stdin.write(line.encode())
            await self.proc.stdin.drain()
            await asyncio.wait_for(self._changed.wait_for(lambda: self._sent_seen >= number), 10)

    async def expect(
        self, receiver: str, count: int = 1, *, within: float = 15.0, since: int = 0
    ) -> list[Mt]:
        """The first ``count`` messages to ``receiver`` after the ``since``-th of all."""

        def mine() -> list[Mt]:
            return [m for m in self.received[since:] if m.receiver == receiver]

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(mine()) >= count), within)
            except TimeoutError:
                raise AssertionError(
                    f"{len(mine())} of {count} messages to {receiver} arrived; "
                    f"fakesmsc said:\n" + "\n".join(self._log[-20:])
                ) from None
        return mine()[:count]

    async def ask(self, sender: str, text: str, *, ucs2: bool = False, within: float = 15.0) -> Mt:
        """Send an MO and return the reply to that phone."""
        mark = len(self.received)
        await self.send(sender, text, ucs2=ucs2)
        [reply] = await self.expect(sender, 1, within=within, since=mark)
        return reply

    def to(self, receiver: str) -> list[Mt]:
        return [m for m in self.received if m.receiver == receiver]


def kannel_env_ok() -> None:
    """Fail with the packages to install when Kannel is missing (never skip)."""
    for name in ("bearerbox", "smsbox", "fakesmsc"):
        binary(name)
    assert os.access(binary("fakesmsc"), os.X_OK)
