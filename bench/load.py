"""Load benchmark: N concurrent simulated participants through the real server.

Starts ``interp-study serve --workers 4`` (gunicorn) on a fresh SQLite file and/or a fresh
PostgreSQL database, registers the tiny stimulus set's experiment, and lets N participants
(one thread each, keep-alive ``http.client`` connection, a short think time between trials)
start and answer every trial. Afterwards it reads the database and compares what the
clients were told (every 2xx response) with the rows in ``response``.

Like the participant page, each simulated participant fetches its first trial with
``GET /api/v1/trial`` and then takes every following trial from the reply to its answer
(``POST .../response?next=1``: one request per trial). ``--protocol get`` fetches every
trial with its own GET instead (two requests per trial), for comparison. The participants
run as threads of K processes (``--client-processes``, default 4; one GIL
each, so the generator's own scheduling adds less to the measured latency and the start
burst reaches the server as fast as it would from independent browsers).

Printed per database: responses per second, p50/p95/p99 latency of
``POST /api/v1/trials/<id>/response`` (overall, and once every participant has started:
the 200 starts of the ramp are the heaviest moment), of ``GET /api/v1/trial`` and of
starts, errors, lost responses (a 2xx the client saw, no row or a different choice
stored), duplicated responses (more than one row for a trial), rows the client never saw
acknowledged, and the CPU seconds spent by the load generator and by the server.

Targets on a 2-core machine (issue 6): >= 300 responses/s, p99 < 100 ms, 0 errors,
0 lost, 0 duplicated. The script exits 1 when a correctness check fails (errors, lost,
duplicated); speed figures are printed, compared with the targets, and never asserted.
The throughput ceiling is set by the think time: 200 participants answering every
~0.5 s offer at most about 390 responses/s.

    .venv/bin/python bench/load.py --db both
    .venv/bin/python bench/load.py --db sqlite --participants 200 --think 0.5 --client-processes 4
    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/load.py --db postgres
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["ServerProcess", "database", "register", "Participant", "ParticipantLog", "run_load", "run_load_processes", "check_database",
           "DbCheck", "percentile", "main"]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


# --------------------------------------------------------------------------- server process


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``interp-study serve`` as a subprocess in its own process group (so it can be SIGKILLed whole)."""

    def __init__(self, database_url: str, instance: Path, workers: int = 4, port: Optional[int] = None,
                 extra_env: Optional[dict[str, str]] = None) -> None:
        self.database_url = database_url
        self.instance = instance
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until ``/healthz`` answers 200 and every worker is booted.

        A worker that is still importing when the load begins takes CPU from the ones that
        serve, so the first answers would measure the server's boot, not its steady state.
        """
        self.instance.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, DATABASE_URL=self.database_url, SECRET_KEY="bench-secret",
                   INTERP_STUDY_INSTANCE=str(self.instance), INTERP_STUDY_RATELIMIT="0", **self.extra_env)
        self.starts += 1
        self.log_path = self.instance / f"server-{self.port}-{self.starts}.log"
        log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "interp_study.cli", "serve", "--port", str(self.port),
               "--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early (code {self.proc.returncode}); see {self.instance}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200 and self._workers_ready():
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not answer /healthz within {timeout} s")

    def _workers_ready(self) -> bool:
        """Whether every gunicorn worker has said it is ready (study_server/wsgi.py)."""
        if self.workers <= 1:
            return True
        lines = self.log_path.read_text(errors="replace").splitlines()
        return sum(line.startswith("interp-study: worker ") and " ready" in line for line in lines) >= self.workers

    def pids(self) -> list[int]:
        """The master and its worker processes (from /proc)."""
        if self.proc is None:
            return []
        found = [self.proc.pid]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.proc.pid:  # ppid
                found.append(int(entry.name))
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the master and its live workers so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group (master and workers) and reap the master."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)
        # a SIGKILLed master leaves its workers orphaned: wait until the group is gone
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the group), SIGKILL after 15 s."""
        self.kill(signal.SIGTERM)


# --------------------------------------------------------------------------- databases


@contextlib.contextmanager
def database(kind: str, workdir: Path, pg_base: Optional[str] = None) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file in ``workdir`` or a new PostgreSQL database (dropped after)."""
    from study_server.db import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.sqlite'}"
        upgrade(url)
        yield url
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base = pg_base or os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG
    parsed = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1) if base.startswith("postgresql://")
                      else base)
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"isp_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = parsed.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def register(database_url: str, workdir: Path, trials: int, practice: int, catch: int, slug: str = "load") -> str:
    """Build the tiny stimulus set, write and register its experiment; returns the slug."""
    from stimuli_builder.tiny import build_tiny_set, write_tiny_experiment
    from study_server import create_app
    from study_server.db import get_session
    from study_server.services.experiments import register_experiment

    stimuli = workdir / "stimuli"
    if not (stimuli / "manifest.json").exists():
        build_tiny_set(stimuli)
    path = write_tiny_experiment(workdir / "exp", stimuli, slug=slug, trials=trials, practice=practice, catch=catch)
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "bench", "REQUEST_LOG": False})
    with app.app_context():
        register_experiment(get_session(), path)
    app.extensions["db_engine"].dispose()
    return slug


# --------------------------------------------------------------------------- participants


@dataclass
class ParticipantLog:
    """What one simulated participant sent and was told."""

    index: int
    participant_id: Optional[str] = None
    token: Optional[str] = None
    acked: dict[int, int] = field(default_factory=dict)  # trial id -> choice sent, for every 2xx (first one)
    duplicates_told: int = 0  # 2xx answers saying "duplicate": true
    post_ms: list[float] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    start_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    finished: bool = False
    last_position: int = 0
    total: Optional[int] = None
    ack_times: list[float] = field(default_factory=list)


class TransportError(Exception):
    """No HTTP answer (connection refused or reset, timeout)."""


class Participant:
    """One participant over a persistent ``http.client`` connection (reopened when the server closes it)."""

    def __init__(self, host: str, port: int, slug: str, log: ParticipantLog, timeout: float = 30.0,
                 protocol: str = "next") -> None:
        self.host, self.port, self.slug, self.log, self.timeout = host, port, slug, log, timeout
        self.protocol = protocol
        self.pending: Optional[dict[str, Any]] = None  # the next trial, from the last reply
        self.conn: Optional[http.client.HTTPConnection] = None

    def _request(self, method: str, path: str, body: Optional[dict[str, Any]] = None,
                 token: Optional[str] = None) -> tuple[int, Any, float]:
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                # a kept-alive connection the server had closed: only safe to resend if nothing was read
                self.conn.close()
                self.conn = None
                if attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError)) \
                        and method == "GET":
                    continue
                raise TransportError(f"{type(exc).__name__}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:  # e.g. IncompleteRead when the server dies mid-answer
                self.conn.close()
                self.conn = None
                raise TransportError(f"{type(exc).__name__}: {exc}") from None
            ms = (time.perf_counter() - t0) * 1000
            if resp.will_close:
                self.conn.close()
                self.conn = None
            data = json.loads(raw) if raw else None
            return resp.status, data, ms
        raise AssertionError("unreachable")

    def start(self, external_id: Optional[str]) -> bool:
        """Start (or resume with the same external id); False after an error."""
        status, data, ms = self._request("POST", f"/api/v1/experiments/{self.slug}/participants",
                                         {"external_id": external_id, "params": {}})
        self.log.start_ms.append(ms)
        if status not in (200, 201):
            self.log.errors.append(f"start {status} {data}")
            return False
        self.log.token = data["token"]
        self.log.participant_id = data["participant_id"]
        return True

    def step(self, rng: random.Random) -> bool:
        """Answer the current trial; False when finished or after an error.

        Protocol ``next`` (what the participant page does): the trial comes with the reply
        to the previous answer (``POST .../response?next=1``), so there is one request per
        trial; ``GET /trial`` only for the first trial. Protocol ``get``: ``GET /trial``
        before every answer, two requests per trial.
        """
        data = self.pending
        self.pending = None
        if data is None:
            status, data, ms = self._request("GET", "/api/v1/trial", token=self.log.token)
            self.log.get_ms.append(ms)
            if status != 200:
                self.log.errors.append(f"GET trial {status} {data}")
                return False
        if data.get("finished"):
            self.log.finished = True
            return False
        trial = data["trial"]
        self.log.total = trial["total"]
        self.log.last_position = trial["position"]
        choice = rng.randrange(2)
        rt = round(rng.uniform(300, 1500), 1)
        query = "?next=1" if self.protocol == "next" else ""
        status, reply, ms = self._request("POST", f"/api/v1/trials/{trial['id']}/response{query}",
                                          {"choice": choice, "rt_ms": rt}, token=self.log.token)
        self.log.post_ms.append(ms)
        if not 200 <= status < 300:
            self.log.errors.append(f"POST response {status} {reply}")
            return False
        if reply.get("duplicate"):
            self.log.duplicates_told += 1
        self.log.acked.setdefault(int(trial["id"]), choice)
        self.log.ack_times.append(time.perf_counter())
        if self.protocol == "next":
            if "next" not in reply:
                self.log.errors.append(f"POST response without 'next': {reply}")
                return False
            self.pending = reply["next"]
            if self.pending.get("finished"):
                self.log.finished = True
                return False
        return True

    def close(self) -> None:
        """Close the connection."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_load(url: str, slug: str, participants: int, think: float, ramp: float, seed: int = 0,
             timeout: float = 30.0, stop_event: Optional[threading.Event] = None,
             protocol: str = "next", indices: Optional[list[int]] = None,
             start_at: Optional[float] = None) -> tuple[list[ParticipantLog], float]:
    """Run ``participants`` threads to completion; returns their logs and the wall time in seconds.

    Each thread starts at a random moment within ``ramp`` seconds, then loops over its trials,
    sleeping ``think`` seconds (uniform 0.5x..1.5x) between them. ``indices`` (default: all
    of ``range(participants)``) and ``start_at`` (a ``time.perf_counter()`` instant; the
    clock is system-wide) let several processes share one run.
    """
    host, port = url.split("//", 1)[1].split(":")
    logs = [ParticipantLog(i) for i in (indices if indices is not None else range(participants))]
    barrier = threading.Barrier(len(logs) + 1)

    def body(log: ParticipantLog) -> None:
        rng = random.Random(seed * 1_000_003 + log.index)
        client = Participant(host, int(port), slug, log, timeout, protocol)
        barrier.wait()
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.perf_counter()))
        time.sleep(rng.uniform(0, ramp))
        try:
            if not client.start(f"load-{seed}-{log.index}"):
                return
            while stop_event is None or not stop_event.is_set():
                if not client.step(rng):
                    return
                if think > 0:
                    time.sleep(rng.uniform(0.5 * think, 1.5 * think))
        except TransportError as exc:
            log.errors.append(f"transport {exc}")
        except Exception as exc:  # noqa: BLE001 - a bench thread reports, never dies silently
            log.errors.append(f"client {type(exc).__name__}: {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=body, args=(log,), daemon=True) for log in logs]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = start_at if start_at is not None else time.perf_counter()
    for t in threads:
        t.join()
    return logs, time.perf_counter() - t0


def _run_slice(args: tuple[Any, ...]) -> tuple[list[ParticipantLog], float, float]:
    """One load-generator process: its share of the participants (and its CPU seconds)."""
    url, slug, participants, think, ramp, seed, timeout, protocol, indices, start_at = args
    logs, wall = run_load(url, slug, participants, think, ramp, seed, timeout, protocol=protocol,
                          indices=indices, start_at=start_at)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return logs, wall, ru.ru_utime + ru.ru_stime


def run_load_processes(url: str, slug: str, participants: int, think: float, ramp: float, seed: int,
                       timeout: float, protocol: str, processes: int) -> tuple[list[ParticipantLog], float, float]:
    """``run_load`` spread over ``processes`` load-generator processes (each one GIL), so the
    generator's own thread scheduling adds less to the measured latency. Returns the logs,
    the wall time and the generator processes' CPU seconds."""
    import multiprocessing

    start_at = time.perf_counter() + 1.0 + 0.2 * processes  # every process is up by then
    slices = [list(range(participants))[k::processes] for k in range(processes)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        results = pool.map(_run_slice, [(url, slug, participants, think, ramp, seed, timeout, protocol, sl, start_at)
                                        for sl in slices if sl])
    logs = sorted((log for part in results for log in part[0]), key=lambda log: log.index)
    return logs, max(r[1] for r in results), sum(r[2] for r in results)


# --------------------------------------------------------------------------- checks


@dataclass
class DbCheck:
    """The clients' view compared with the ``response`` table."""

    acked: int  # distinct trials the clients saw a 2xx for
    rows: int  # rows in response for these participants
    lost: int  # acked, but no row or a different choice stored
    duplicated: int  # rows beyond the first for a trial
    unacked_rows: int  # rows the clients never saw acknowledged (e.g. the server died before answering)
    wrong_position: int  # participants whose stored answers are not exactly positions 1..k
    details: list[str] = field(default_factory=list)


def check_database(database_url: str, logs: list[ParticipantLog]) -> DbCheck:
    """Count lost, duplicated and unacknowledged responses from the database."""
    from sqlalchemy import text

    from study_server.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT p.public_id, t.id, t.position, r.chosen_side FROM response r "
                "JOIN trial t ON t.id = r.trial_id JOIN participant p ON p.id = t.participant_id")).all()
            conn.rollback()
    finally:
        engine.dispose()
    by_trial: dict[int, list[int]] = {}
    positions: dict[str, list[int]] = {}
    for public_id, trial_id, position, chosen in rows:
        by_trial.setdefault(int(trial_id), []).append(int(chosen))
        positions.setdefault(public_id, []).append(int(position))
    acked = {tid: choice for log in logs for tid, choice in log.acked.items()}
    details: list[str] = []
    lost = 0
    for tid, choice in acked.items():
        stored = by_trial.get(tid)
        if not stored or stored[0] != choice:
            lost += 1
            if len(details) < 10:
                details.append(f"trial {tid}: acked choice {choice}, stored {stored}")
    duplicated = sum(len(v) - 1 for v in by_trial.values())
    unacked = sum(1 for tid in by_trial if tid not in acked)
    wrong = 0
    for pid, pos in positions.items():
        if sorted(pos) != list(range(1, len(pos) + 1)):
            wrong += 1
    return DbCheck(acked=len(acked), rows=len(rows), lost=lost, duplicated=duplicated, unacked_rows=unacked,
                   wrong_position=wrong, details=details)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest-rank), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


# --------------------------------------------------------------------------- the benchmark


def bench_one(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark on one database kind; prints and returns the figures."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix=f"isp-load-{kind}-") as tmp:
        work = Path(tmp)
        with database(kind, work, args.postgres_url) as url:
            slug = register(url, work, args.trials, args.practice, args.catch)
            extra = {"GUNICORN_CMD_ARGS": args.gunicorn_args} if args.gunicorn_args else {}
            extra["INTERP_STUDY_SQLITE_SYNCHRONOUS"] = args.sqlite_synchronous
            server = ServerProcess(url, work / "instance", workers=args.workers, extra_env=extra)
            server.start()
            try:
                cpu_server0 = server.cpu_seconds()
                ru0 = resource.getrusage(resource.RUSAGE_SELF)
                m0 = machine_cpu()
                if args.client_processes > 1:
                    logs, wall, child_cpu = run_load_processes(
                        server.url, slug, args.participants, args.think, args.ramp, args.seed, args.timeout,
                        args.protocol, args.client_processes)
                else:
                    logs, wall = run_load(server.url, slug, args.participants, args.think, args.ramp, args.seed,
                                          args.timeout, protocol=args.protocol)
                    child_cpu = 0.0
                ru1 = resource.getrusage(resource.RUSAGE_SELF)
                m1 = machine_cpu()
                cpu_server = server.cpu_seconds() - cpu_server0
            finally:
                server.stop()
            check = check_database(url, logs)
    post = [ms for log in logs for ms in log.post_ms]
    get = [ms for log in logs for ms in log.get_ms]
    starts = [ms for log in logs for ms in log.start_ms]
    errors = [e for log in logs for e in log.errors]
    acks = sorted(t for log in logs for t in log.ack_times)
    # latency once every participant has started (after the ramp and 2 s more): tells the
    # start burst's share of the tail from the steady state's
    settled = (min(acks) + args.ramp + 2.0) if acks else 0.0
    post_settled = [ms for log in logs for ms, t in zip(log.post_ms, log.ack_times) if t > settled]
    window = (acks[-1] - acks[0]) if len(acks) > 1 else float("nan")
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime) + child_cpu
    result = {
        "db": kind, "protocol": args.protocol, "client_processes": args.client_processes,
        "participants": args.participants, "workers": args.workers, "think_s": args.think,
        "trials_each": args.trials + args.practice + args.catch,
        "gunicorn_args": args.gunicorn_args or "",
        "sqlite_synchronous": args.sqlite_synchronous if kind == "sqlite" else "",
        "responses_acked": len(post) - sum(1 for e in errors if e.startswith("POST")),
        "finished": sum(log.finished for log in logs),
        "wall_s": round(wall, 2), "responses_per_s": round(len(acks) / window, 1) if len(acks) > 1 else 0.0,
        "post_p50_ms": round(percentile(post, 50), 1), "post_p95_ms": round(percentile(post, 95), 1),
        "post_p99_ms": round(percentile(post, 99), 1), "post_max_ms": round(max(post, default=float("nan")), 1),
        "post_settled_p99_ms": round(percentile(post_settled, 99), 1), "post_settled_n": len(post_settled),
        "get_p50_ms": round(percentile(get, 50), 1), "get_p99_ms": round(percentile(get, 99), 1),
        "start_p50_ms": round(percentile(starts, 50), 1), "start_p99_ms": round(percentile(starts, 99), 1),
        "errors": len(errors), "lost": check.lost, "duplicated": check.duplicated,
        "unacked_rows": check.unacked_rows, "rows": check.rows, "wrong_position": check.wrong_position,
        "client_cpu_s": round(client_cpu, 1), "server_cpu_s": round(cpu_server, 1),
        "client_cpu_share": round(client_cpu / wall, 2), "server_cpu_share": round(cpu_server / wall, 2),
        "loadavg_before": round(load_before, 2),
        "machine_busy": round((m1[0] - m0[0]) / max(1.0, m1[1] - m0[1]), 2),
        "error_samples": errors[:5], "lost_samples": check.details,
    }
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    print(f"\n== {r['db']}: {r['participants']} participants x {r['trials_each']} trials, "
          f"{r['workers']} gunicorn workers {r['gunicorn_args']}, think {r['think_s']} s, protocol {r['protocol']}, "
          f"{r['client_processes']} load-generator process(es)"
          + (f", synchronous={r['sqlite_synchronous']}" if r["sqlite_synchronous"] else "") + " ==")
    print(f"  responses stored/acked  {r['rows']} / {r['responses_acked']}   finished {r['finished']}/"
          f"{r['participants']}   wall {r['wall_s']} s")
    print(f"  responses per second    {r['responses_per_s']:>8}   target >= 300   {ok(r['responses_per_s'] >= 300)}")
    print(f"  POST response ms        p50 {r['post_p50_ms']}  p95 {r['post_p95_ms']}  p99 {r['post_p99_ms']}  "
          f"max {r['post_max_ms']}   p99 target < 100   {ok(r['post_p99_ms'] < 100)}")
    print(f"  POST response ms after the start ramp + 2 s ({r['post_settled_n']} answers): "
          f"p99 {r['post_settled_p99_ms']}")
    print(f"  GET trial ms            p50 {r['get_p50_ms']}  p99 {r['get_p99_ms']}")
    print(f"  POST start ms           p50 {r['start_p50_ms']}  p99 {r['start_p99_ms']}")
    print(f"  errors {r['errors']}   lost {r['lost']}   duplicated {r['duplicated']}   "
          f"stored-but-unacked {r['unacked_rows']}   wrong positions {r['wrong_position']}")
    print(f"  CPU: load generator {r['client_cpu_s']} s ({r['client_cpu_share']:.0%} of one core), "
          f"server {r['server_cpu_s']} s ({r['server_cpu_share']:.0%} of one core); machine {r['machine_busy']:.0%} busy over {os.cpu_count()} cores (1-min load average before: {r['loadavg_before']})")
    for e in r["error_samples"]:
        print(f"  error: {e}")
    for d in r["lost_samples"]:
        print(f"  lost: {d}")


def main(argv: Optional[list[str]] = None) -> int:
    """Command line entry point; exits 1 when a correctness check fails."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--participants", type=int, default=200)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--trials", type=int, default=24, help="main trials per participant (tiny set: at most 24)")
    p.add_argument("--practice", type=int, default=4)
    p.add_argument("--catch", type=int, default=4)
    p.add_argument("--think", type=float, default=0.5,
                   help="mean seconds between a response and the next GET (0: as fast as possible)")
    p.add_argument("--protocol", choices=["next", "get"], default="next",
                   help="next: each answer's reply carries the next trial (?next=1, as the participant page "
                        "does); get: GET /trial before every answer")
    p.add_argument("--client-processes", type=int, default=4,
                   help="spread the simulated participants over this many load-generator processes")
    p.add_argument("--ramp", type=float, default=2.0, help="participants start spread over this many seconds")
    p.add_argument("--timeout", type=float, default=30.0, help="client socket timeout in seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sqlite-synchronous", default="NORMAL", choices=["NORMAL", "FULL", "EXTRA"],
                   help="SQLite synchronous level of the server (docs/durability.md)")
    p.add_argument("--gunicorn-args", default="", help="extra gunicorn options via GUNICORN_CMD_ARGS")
    p.add_argument("--postgres-url", default=None, help=f"server to create a database on "
                   f"[default: $TEST_DATABASE_URL or {DEFAULT_PG}]")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = [bench_one(kind, args) for kind in kinds]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    bad = [r for r in results if r["errors"] or r["lost"] or r["duplicated"] or r["wrong_position"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
