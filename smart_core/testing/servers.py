"""Throw-away Redis and PostgreSQL servers for tests: started on a free port in a temporary folder.

The store tests need real servers (fakes would not show a lost or doubled increment under
concurrency or a restart), and CI machines have only the Debian packages, not running services.
``RedisServer`` and ``PostgresServer`` start one from those binaries, owned by the test run, and
can be stopped and started again on the same port and data (the restart tests do that).

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` user (created by
the Debian package) in a folder handed over to it. ``ServerUnavailable`` says why a server could
not be started, so a test can skip with that reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresServer", "RedisServer", "ServerUnavailable", "free_port"]

_START_TIMEOUT = 30.0


class ServerUnavailable(RuntimeError):
    """The server's binaries are missing or it would not start; the message says which and why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, what: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerUnavailable(f"{what} exited at start-up: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise ServerUnavailable(f"{what} did not accept connections within {_START_TIMEOUT:g} s")


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


class RedisServer:
    """``redis-server`` as a child process on a free port, persisting to an append-only file in
    its own temporary folder (so a stop and start keeps the data, as a real deployment would)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable(
                "redis-server is not installed (scripts/services.sh installs it: "
                "apt-get install redis-server)"
            )
        self._binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="smart-redis-"))
        self._log = self.dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        command = [
            self._binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--logfile", str(self._log),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            _wait_for_port(self.port, self._proc, "redis-server", self._log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Shut down gracefully (SIGTERM: the append-only file is flushed); kill if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _postgres_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        return Path(on_path).resolve().parent
    raise ServerUnavailable(
        "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/pg_ctl and no pg_ctl on PATH "
        "(scripts/services.sh installs it: apt-get install postgresql)"
    )


class PostgresServer:
    """A PostgreSQL cluster made with ``initdb`` in a temporary folder, run by ``pg_ctl`` on a free
    port with trust authentication on 127.0.0.1 only; its superuser is ``postgres``."""

    def __init__(self) -> None:
        self._bin = _postgres_bin()
        self._as_user: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="smart-pg-"))
        if os.geteuid() == 0:
            self._as_user = self._drop_root()
        self.port = free_port()
        self._data = self.dir / "data"
        self._log = self.dir / "postgres.log"
        self._initdb()

    def _drop_root(self) -> list[str]:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable(
                "running as root and there is no 'postgres' user to run PostgreSQL as "
                "(the Debian postgresql package creates it)"
            ) from None
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        runuser = shutil.which("runuser")
        if runuser is not None:
            return [runuser, "-u", "postgres", "--"]
        raise ServerUnavailable("running as root and runuser is missing: cannot start PostgreSQL")

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            [*self._as_user, *command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.dir,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise ServerUnavailable(f"{Path(command[0]).name} failed: {' | '.join(output)}")

    def _initdb(self) -> None:
        self._run(
            str(self._bin / "initdb"),
            "-D", str(self._data),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
            return True
        return False

    def start(self) -> PostgresServer:
        if self.running:
            return self
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            # Test data need not survive a power cut; this keeps commits from waiting on disks.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            str(self._bin / "pg_ctl"),
            "-D", str(self._data),
            "-l", str(self._log),
            "-w", "-t", str(int(_START_TIMEOUT)),
            "-o", options,
            "start",
        )  # fmt: skip
        _wait_for_port(self.port, None, "postgres", self._log)
        return self

    def stop(self) -> None:
        """Fast shutdown: open sessions are ended, committed data is kept."""
        if not (self._data / "postmaster.pid").exists():
            return
        self._run(str(self._bin / "pg_ctl"), "-D", str(self._data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        """Stop the server and delete its folder."""
        with contextlib.suppress(ServerUnavailable):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
