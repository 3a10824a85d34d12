"""Server child processes: spawn them private and tied to us, wait until they answer."""

from __future__ import annotations

import ctypes
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

START_TIMEOUT_S = 30.0
_PR_SET_PDEATHSIG = 1
# Resolved once here: between fork and exec a child must not load libraries
# (another thread may hold the loader's lock at fork time).
_LIBC = ctypes.CDLL(None, use_errno=True)


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started; the message includes its log."""


def package_dir(name: str) -> Path:
    """A package's directory, found without importing it (pgserver's import has side effects)."""
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def die_with_parent(sig: int) -> None:
    """Have the kernel send this process ``sig`` when the thread that started it dies."""
    if _LIBC.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def socket_answers(path: Path) -> bool:
    """True when something accepts connections on the Unix socket ``path``."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def write_private(path: Path, text: str, owner: pwd.struct_passwd | None = None) -> None:
    """Write ``text`` to ``path``, readable by its owner alone (it may hold a secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        if owner is not None:
            os.fchown(handle.fileno(), owner.pw_uid, owner.pw_gid)
        handle.write(text)


def private_log(path: Path, owner: pwd.struct_passwd | None = None) -> None:
    """Create ``path`` if missing; either way only its owner may read it (logs show queries)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    path.chmod(0o600)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


@dataclass
class Child:
    """A server process we started, how to stop it and how to tell it is ready."""

    name: str
    proc: subprocess.Popen[bytes]
    stop_signal: int
    ready: Callable[[], bool]
    log: Path


def spawn(
    name: str,
    argv: list[str],
    log: Path,
    stop_signal: int,
    ready: Callable[[], bool],
    *,
    as_user: pwd.struct_passwd | None = None,
) -> Child:
    """Start a server with its output appended to ``log``; it dies when we do."""

    def tied_to_us() -> None:
        die_with_parent(stop_signal)

    private_log(log)
    with log.open("ab") as log_file:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Own session: a terminal's Ctrl-C reaches only us, and we stop
            # the servers after the app has closed its connections.
            start_new_session=True,
            preexec_fn=tied_to_us,  # noqa: PLW1509 - one pre-resolved libc call, no imports
            user=as_user.pw_uid if as_user else None,
            group=as_user.pw_gid if as_user else None,
            extra_groups=[] if as_user else None,
        )
    return Child(name, proc, stop_signal, ready, log)


def wait_until_ready(child: Child, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll until ``child`` answers; raise with its last log lines if it exits or hangs."""
    deadline = time.monotonic() + timeout_s
    while not child.ready():
        if child.proc.poll() is not None:
            raise EmbeddedServerError(
                f"{child.name} exited with code {child.proc.returncode}; last log lines:\n"
                f"{tail(child.log)}"
            )
        if time.monotonic() > deadline:
            raise EmbeddedServerError(
                f"{child.name} did not start in {timeout_s:.0f} s; last log lines:\n"
                f"{tail(child.log)}"
            )
        time.sleep(0.05)


def stop_child(child: Child, timeout_s: float) -> None:
    """Ask ``child`` to stop with its own signal; kill it if it takes too long."""
    if child.proc.poll() is None:
        child.proc.send_signal(child.stop_signal)
        try:
            child.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
