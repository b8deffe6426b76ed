"""Shared plumbing of the Odoo-level benchmarks (not a benchmark itself).

* :func:`machine_line` - CPUs, platform, Python and PostgreSQL versions, printed by every run,
  and :func:`code_line` - which addon code was measured;
* :class:`Databases` - fresh databases made with ``createdb`` + ``odoo -i … --stop-after-init``,
  always dropped at the end (also on an exception, Ctrl-C or SIGTERM);
* :func:`open_registry` - Odoo configured in this process, a registry per database;
* :class:`StandInProcess` - ``tests/metrika_stand_in.py`` served from a child process, so its CPU
  and memory are not counted in the measured (Odoo) process; :meth:`StandInProcess.summary`
  reports what it received;
* :class:`StatementLog` - every SQL statement Odoo's cursors run on a database, counted by shape.

The scripts import this module from their own folder (``python3 benchmarks/<name>.py`` puts the
folder on ``sys.path``).
"""

import collections
import contextlib
import hashlib
import json
import os
import pathlib
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from odoo_env import ADDON, addons_path, odoo_command, wait_for_postgres  # noqa: E402 - scripts/ on the path first

STAND_IN_PATH = REPO / "tests" / "metrika_stand_in.py"
# The benchmarks' own reading of a PostgreSQL backend's CPU time: not counted as a statement.
PID_QUERY = "SELECT pg_backend_pid()"


def postgres_version():
    probe = subprocess.run(
        ["psql", "-X", "-At", "-d", "postgres", "-c", "SHOW server_version"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() or "unknown (%s)" % probe.stderr.strip()


def machine_line():
    return "machine: %s CPUs, %s, Python %s (%s), PostgreSQL %s" % (
        os.cpu_count(),
        platform.platform(),
        platform.python_version(),
        platform.python_implementation(),
        postgres_version(),
    )


def code_line():
    """Which addon code ran: the commit, whether the addon differs from it, a digest of its files.

    Others edit the working tree while benchmarks run, so the digest names what was measured.
    """

    def git(*args):
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD") or "no git"
    changed = git("status", "--porcelain", "--", ADDON)
    digest = hashlib.sha256()
    for path in sorted((REPO / ADDON).rglob("*")):
        if path.is_file() and path.suffix in (".py", ".xml", ".csv", ".sql"):
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return "code: commit %s%s, addon files sha256 %s" % (
        head,
        " + uncommitted changes in %d addon files" % len(changed.splitlines()) if changed else "",
        digest.hexdigest()[:12],
    )


def rss_mb(kib):
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


class LoggedProcess:
    """A child process whose output goes to ``self.log`` (a temporary file opened "w+")."""

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def log_tail(self, chars=3000):
        return self.log_text()[-chars:]

    def error_lines(self):
        return [
            line
            for line in self.log_text().splitlines()
            if " ERROR " in line or " CRITICAL " in line
        ]


class Databases:
    """Fresh databases for one run; ``with Databases("tag") as dbs:`` drops them all on exit."""

    def __init__(self, tag):
        self.prefix = "bench_%s_%d_%d" % (tag, os.getpid(), int(time.time()))
        self.names = []

    def __enter__(self):
        # SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C, so the ``finally`` still drops.
        signal.signal(signal.SIGTERM, _terminate)
        return self

    def __exit__(self, *exc_info):
        self.drop_all()

    def name(self, suffix):
        return "%s_%s" % (self.prefix, suffix)

    def install(self, installs):
        """``{suffix: "module,module"}``: create and install all, in parallel; return the names.

        Each database is created with ``createdb`` and initialised by a separate
        ``odoo -i … --stop-after-init --without-demo=all`` process (two run side by side).
        """
        if not wait_for_postgres():
            raise RuntimeError("PostgreSQL does not accept connections")
        procs = []
        try:
            for suffix, modules in installs.items():
                database = self.name(suffix)
                subprocess.run(["createdb", database], check=True)
                self.names.append(database)
                log = tempfile.TemporaryFile("w+")  # closed in the finally below
                command = odoo_command(
                    database,
                    "-i",
                    modules,
                    "--stop-after-init",
                    "--without-demo=all",
                    "--no-http",
                    "--max-cron-threads",
                    "0",
                    "--log-level",
                    "warn",
                )
                procs.append(
                    (
                        database,
                        modules,
                        log,
                        subprocess.Popen(
                            command,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        ),
                    )
                )
            failed = []
            for database, modules, log, proc in procs:
                code = proc.wait()
                log.seek(0)
                text = log.read()
                if code != 0 or " ERROR " in text or " CRITICAL " in text:
                    failed.append(
                        "%s (-i %s, exit %s):\n%s" % (database, modules, code, text[-4000:])
                    )
        finally:
            for _database, _modules, log, proc in procs:
                if proc.poll() is None:  # interrupted: stop the installs we started
                    proc.terminate()
                    proc.wait()
                log.close()
        if failed:
            raise RuntimeError("installation failed: " + "\n".join(failed))
        return [self.name(suffix) for suffix in installs]

    def drop_all(self):
        try:
            # Each module by name: 19.0's ``odoo`` is a namespace package that imports nothing.
            import odoo.modules.registry
            import odoo.sql_db

            for database in self.names:
                odoo.modules.registry.Registry.delete(database)
                odoo.sql_db.close_db(database)
        except Exception as err:
            print("warning: closing Odoo's connections failed: %s" % err, flush=True)
        for database in self.names:
            done = subprocess.run(
                ["dropdb", "--if-exists", "--force", database],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                print("warning: dropdb %s failed: %s" % (database, done.stderr.strip()), flush=True)
        self.names = []


# Multi-row VALUES and long IN lists differ only by their length: one statement shape.
_REPEATED_PLACEHOLDERS = re.compile(
    r"(\(\s*(?:%s\s*,\s*)*%s\s*\))(\s*,\s*\(\s*(?:%s\s*,\s*)*%s\s*\))+"
)
_SPACES = re.compile(r"\s+")
# The verb of a statement and the first table it names, e.g. "INSERT metrika_conversion".
_KIND = re.compile(
    r"^\s*(?:WITH\b.*?\)\s*)?(SELECT|INSERT|UPDATE|DELETE|SAVEPOINT|RELEASE|ROLLBACK|LOCK)\b"
    r'(?:.*?\b(?:FROM|INTO|TABLE)\s+"?([\w.]+)"?)?',
    re.IGNORECASE | re.DOTALL,
)


def statement_shape(query):
    """A statement's text with its spacing normalised and repeated VALUES rows folded."""
    text = _SPACES.sub(" ", str(query)).strip()
    return _REPEATED_PLACEHOLDERS.sub(r"\1, ...", text)


def statement_kind(shape):
    """The verb and first table of a statement shape: a coarser key than the shape, the same
    on two databases whose tables have different columns."""
    match = _KIND.match(shape)
    if not match:
        return shape[:60]
    verb, table = match.groups()
    if verb.upper() == "UPDATE":
        table = shape.split()[1].strip('"')
    return "%s %s" % (verb.upper(), table) if table else verb.upper()


class StatementLog:
    """Counts the SQL statements that Odoo's cursors run on one database while recording.

    Every statement goes through ``odoo.sql_db.Cursor.execute`` (the ORM's queries, raw SQL,
    ``execute_values``), which :meth:`install` wraps once per process. Within
    ``with log.recording(database, label):`` the statements run on ``database`` (by any cursor of
    this process) are counted by shape into ``log.counts[label]``; recordings nest (the inner
    one's label counts until it ends). The benchmarks' own ``SELECT pg_backend_pid()`` is left out.
    COMMIT and ROLLBACK are not statements here (psycopg2 runs them on the connection).
    """

    _installed = None

    def __init__(self):
        self.counts = collections.defaultdict(collections.Counter)
        self.active = None  # (database, label)

    def install(self):
        import odoo.sql_db
        import odoo.tools

        if StatementLog._installed is None:
            original = odoo.sql_db.Cursor.execute

            def execute(cursor, query, params=None, log_exceptions=True):
                log = StatementLog._installed
                if log is not None and log.active and log.active[0] == cursor.dbname:
                    code = query.code if isinstance(query, odoo.tools.SQL) else query
                    if code != PID_QUERY:
                        log.counts[log.active[1]][statement_shape(code)] += 1
                return original(cursor, query, params, log_exceptions)

            odoo.sql_db.Cursor.execute = execute
        StatementLog._installed = self
        return self

    @contextlib.contextmanager
    def recording(self, database, label):
        previous, self.active = self.active, (database, label)
        try:
            yield self.counts[label]
        finally:
            self.active = previous

    def total(self, label):
        return sum(self.counts[label].values())


_CONFIGURED = False


def open_registry(database):
    """The Odoo registry of ``database``, loaded in this process (configures Odoo once)."""
    global _CONFIGURED
    import odoo.modules.registry
    import odoo.tools

    if not _CONFIGURED:
        odoo.tools.config.parse_config(
            [
                "--addons-path",
                addons_path(),
                "--log-level",
                "warn",
                "--max-cron-threads",
                "0",
                "--no-http",
            ]
        )
        _CONFIGURED = True
    return odoo.modules.registry.Registry(database)


# The child process: start the stand-in, print its URL, then answer one command per stdin line:
# "summary" -> one JSON line about what it received; "quit" (or EOF) -> stop.
_STAND_IN_MAIN = r"""
import csv, importlib.util, io, json, sys
spec = importlib.util.spec_from_file_location("metrika_stand_in", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
api = module.MetrikaStandIn(token=sys.argv[2]).start()
print(api.url, flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "summary":
        with api._lock:
            requests = list(api.requests)
            cdp = [dict(u) for uploadings in api.cdp_uploadings.values() for u in uploadings]
        uploads = [r for r in requests if r.path.endswith("/data/simple_orders")]
        ids, rows = set(), 0
        for r in uploads:
            if r.file:
                for row in csv.DictReader(io.StringIO(r.file.decode("utf-8"))):
                    rows += 1
                    ids.add(row["id"])
        print(json.dumps({
            "requests": len(requests),
            "paths": sorted({"%s %s" % (r.method, r.path) for r in requests}),
            "statuses": sorted({r.status for r in requests if r.status is not None}),
            "simple_order_uploads": len(uploads),
            "simple_order_rows": rows,
            "distinct_order_ids": len(ids),
            "validation_failed": sum(u["api_validation_status"] != "PASSED" for u in cdp),
        }), flush=True)
    elif command == "quit":
        break
api.stop()
"""


class StandInProcess:
    """``tests/metrika_stand_in.py`` in a child process; ``url``, ``summary()``, ``stop()``."""

    def __init__(self, token):
        self.token = token
        self.proc = None
        self.url = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _STAND_IN_MAIN, str(STAND_IN_PATH), self.token],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError("the Metrica stand-in did not start")
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def summary(self):
        self.proc.stdin.write("summary\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self):
        if self.proc is None:
            return
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


__all__ = [
    "ADDON",
    "PID_QUERY",
    "Databases",
    "StandInProcess",
    "StatementLog",
    "code_line",
    "machine_line",
    "open_registry",
    "rss_mb",
    "statement_kind",
    "statement_shape",
]
