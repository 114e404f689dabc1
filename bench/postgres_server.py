"""A throwaway PostgreSQL server, for the benchmark and the test of workers sharing a study in a database.

It creates a cluster in a temporary folder, runs it as an unprivileged user on a free loopback port with trust
authentication and without durability (fsync off: nothing outlives it), creates one database, and stops and
deletes everything afterwards. The server programs come from Debian's `postgresql` package
(/usr/lib/postgresql/<version>/bin) or PATH.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
DATABASE, ROLE = "nas", "nas"


def server_bin() -> Path | None:
    """The folder of the newest PostgreSQL server programs installed (Debian's layout first, then PATH)."""
    folders = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    folders += [Path(on_path).parent] if on_path else []
    return next((f for f in folders if all((f / name).is_file() for name in SERVER_PROGRAMS)), None)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unprivileged_user() -> str | None:
    """The user the server runs as when this is root (initdb refuses root); None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):  # Debian's package creates `postgres`
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run the PostgreSQL server as")


@contextlib.contextmanager
def throwaway_database(folder: Path) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh database in a private server run from the programs in `folder` (server_bin)."""
    import psycopg2  # the PostgreSQL test's dependency (requirements-dev.txt)

    user = unprivileged_user()
    as_user = ["runuser", "-u", user, "--"] if user else []
    # Not under pytest's temporary folders, nor $TMPDIR: the server's user must be able to reach its folder.
    root = Path(tempfile.mkdtemp(prefix="nas_pg_", dir="/tmp" if user and os.path.isdir("/tmp") else None))
    if user:
        record = pwd.getpwnam(user)
        os.chown(root, record.pw_uid, record.pw_gid)
    data, log, port = root / "data", root / "server.log", free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)
        if done.returncode:
            server_log = log.read_text() if log.is_file() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                               f"{server_log}")

    try:
        run(str(folder / "initdb"), "-D", str(data), "-U", ROLE, "-A", "trust", "-E", "UTF8", "--locale", "C",
            "--no-sync")
        options = f"-h 127.0.0.1 -p {port} -k '' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run(str(folder / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        connection = psycopg2.connect(host="127.0.0.1", port=port, user=ROLE, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
        connection.close()
        yield f"postgresql+psycopg2://{ROLE}@127.0.0.1:{port}/{DATABASE}"
    finally:
        subprocess.run([*as_user, str(folder / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
