"""Helper of scripts/neo4j-dev.sh: wait until a just-started Neo4j answers on Bolt, and set the
password of the ``neo4j`` user on its first start.

    NEO4J_PASSWORD=... python scripts/neo4j_dev.py wait --uri bolt://127.0.0.1:7687 --pid 1234 --timeout 120

The password is read from the environment only (never from the command line, never printed).
Exit status 0 once ``RETURN 1`` runs with the real password; 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from urllib.parse import urlparse

INITIAL_PASSWORD = "neo4j"
USER = "neo4j"


class Failed(Exception):
    pass


def log(message: str) -> None:
    print(f"neo4j-dev: {message}", file=sys.stderr, flush=True)


def tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("State:"):
                    return "Z" not in line.split(":", 1)[1]
    except OSError:
        return False
    return True


def run_query(uri: str, password: str) -> None:
    from neo4j import GraphDatabase

    with GraphDatabase.driver(uri, auth=(USER, password), connection_timeout=5.0) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS ok", database_="neo4j")
        if not records or records[0]["ok"] != 1:
            raise Failed("RETURN 1 gave no answer")


def set_password(uri: str, password: str) -> None:
    from neo4j import GraphDatabase

    with GraphDatabase.driver(uri, auth=(USER, INITIAL_PASSWORD), connection_timeout=5.0) as driver:
        with driver.session(database="system") as session:
            session.run(
                "ALTER CURRENT USER SET PASSWORD FROM $old TO $new", old=INITIAL_PASSWORD, new=password
            ).consume()


def wait(uri: str, pid: int | None, timeout: float, password: str) -> None:
    from neo4j.exceptions import AuthError, ClientError, DatabaseUnavailable, ServiceUnavailable, SessionExpired
    from neo4j.exceptions import TransientError as Neo4jTransientError

    if password == INITIAL_PASSWORD:
        raise Failed("NEO4J_PASSWORD must not be the initial password 'neo4j'")
    parsed = urlparse(uri)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 7687
    deadline = time.monotonic() + timeout
    started = time.monotonic()

    def check_alive() -> None:
        if pid is not None and not pid_alive(pid):
            raise Failed(f"the server process {pid} exited before Bolt answered")
        if time.monotonic() > deadline:
            raise Failed(f"no Bolt answer on {host}:{port} after {timeout:.0f}s")

    while not tcp_open(host, port):
        check_alive()
        time.sleep(0.5)
    log(f"Bolt port open after {time.monotonic() - started:.1f}s")

    password_set = False
    while True:
        check_alive()
        try:
            run_query(uri, password)
            if not password_set:
                log("the password is already set")
            return
        except AuthError:
            if password_set:
                raise Failed("the new password was set but does not log in") from None
        except (ServiceUnavailable, SessionExpired, DatabaseUnavailable, Neo4jTransientError, OSError):
            time.sleep(0.5)  # Bolt is up but the databases are still starting
            continue
        # the real password was refused: this is a first start, still on neo4j/neo4j
        try:
            set_password(uri, password)
        except AuthError:
            raise Failed(
                "the server refused both NEO4J_PASSWORD and the initial password; use the password this store "
                "was set up with, or delete the store's data/ folder to start over"
            ) from None
        except (ServiceUnavailable, SessionExpired, DatabaseUnavailable, Neo4jTransientError, OSError):
            time.sleep(0.5)
            continue
        except ClientError as exc:  # e.g. a password shorter than the server accepts
            raise Failed(f"cannot set the password: {exc.message}") from None
        password_set = True
        log("password of user neo4j set (first start)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_wait = sub.add_parser("wait", help="wait for Bolt and set the password on first start")
    p_wait.add_argument("--uri", default="bolt://127.0.0.1:7687")
    p_wait.add_argument("--pid", type=int, default=None, help="give up as soon as this process exits")
    p_wait.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    logging.getLogger("neo4j").setLevel(logging.CRITICAL)  # connection-refused chatter while the server starts

    password = os.environ.get("NEO4J_PASSWORD") or ""
    if not password:
        log("error: NEO4J_PASSWORD is empty")
        return 1
    try:
        wait(args.uri, args.pid, args.timeout, password)
    except Failed as exc:
        log(f"error: {exc}")
        return 1
    except ImportError:
        log("error: the neo4j Python driver is not installed in this Python")
        return 1
    except Exception as exc:  # a server error we did not expect: one line, no traceback
        log(f"error: {type(exc).__name__}: {getattr(exc, 'message', None) or exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
