"""A real PostgreSQL server for the shared-store tests, in a temporary directory.

``initdb`` and ``pg_ctl`` come from PATH or Debian's ``/usr/lib/postgresql/<version>/bin``
(scripts/system-deps.sh installs postgresql-15 where they are missing). PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` system user (the Debian package
creates it; system-deps.sh makes one where it is missing).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from glob import glob
from pathlib import Path

SERVER_USER = "postgres"


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    dirs = sorted(glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2])
                  if d.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    directory: Path
    port: int
    bindir: Path
    as_user: str | None

    @property
    def admin_url(self) -> str:
        return f"postgresql://testbed@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://testbed@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        data = self.directory / "data"
        init = self._run("initdb", "-D", str(data), "-U", "testbed", "-A", "trust", "-E",
                         "UTF8", "--no-sync", "--no-locale")
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
        opts = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        started = self._run("pg_ctl", "-D", str(data), "-l", str(self.directory / "log"),
                            "-o", opts, "-w", "-t", "60", "start")
        if started.returncode:
            log = (self.directory / "log").read_text(errors="replace") \
                if (self.directory / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}{log[-2000:]}")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


def start_server() -> Server:
    """Start a throwaway server; raises RuntimeError saying what is missing."""
    bindir = binaries()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) on PATH or under "
                           "/usr/lib/postgresql/*/bin; scripts/system-deps.sh installs "
                           "postgresql-15")
    as_user = None
    directory = Path(tempfile.mkdtemp(prefix="testbed-pg-"))
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError as exc:
            shutil.rmtree(directory)
            raise RuntimeError(f"running as root and there is no {SERVER_USER!r} user to run "
                               "the server as; scripts/system-deps.sh creates it") from exc
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        as_user = SERVER_USER
    server = Server(directory, free_port(), bindir, as_user)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
