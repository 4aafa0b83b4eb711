"""Crash benchmark: SIGKILL the whole server during load, restart it, every participant resumes.

Runs the real server (``interp-study serve --workers 4``, gunicorn) on a fresh SQLite file
and/or PostgreSQL database. N participants answer as fast as they can; once a given share
of all responses has been acknowledged, the server's whole process group (master and
workers) gets SIGKILL, with requests in flight. The server is started again on the same
database; every participant resumes with its external id, replays the response it had in
flight (if any: the server may or may not have stored it before dying), checks that the
current trial is exactly the one after its stored answers, and answers to the end.

Printed per database: responses acknowledged before the kill, requests in flight at the
kill, how many of those the server had stored anyway, restart time, and from the database
afterwards: lost (a 2xx without its row, or a different choice stored), duplicated (more
than one row per trial), participants that resumed at a wrong trial, and participants
that did not finish. Exits 1 when any of those is not 0.

    .venv/bin/python bench/crash.py --db both
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import (Participant, ParticipantLog, ServerProcess, TransportError, check_database,  # noqa: E402
                        database, register)

__all__ = ["CrashResult", "crash_run", "main"]


@dataclass
class CrashResult:
    """What one crash run saw."""

    db: str
    participants: int
    trials_each: int
    acked_before_kill: int = 0
    in_flight_at_kill: int = 0  # POSTs that got no answer because of the kill
    in_flight_stored: int = 0  # of those, how many the server had committed anyway
    restart_s: float = 0.0
    resumed: int = 0  # participants that resumed as the same participant
    wrong_resume: int = 0  # resumed at a trial other than the one after their stored answers
    replay_errors: int = 0  # a replayed in-flight response that did not get 200
    finished: int = 0
    acked_total: int = 0
    rows: int = 0
    lost: int = 0
    duplicated: int = 0
    unacked_rows: int = 0
    wrong_position: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was lost, duplicated or resumed wrongly and everyone finished."""
        return not (self.lost or self.duplicated or self.wrong_resume or self.replay_errors or self.errors
                    or self.wrong_position or self.finished != self.participants
                    or self.resumed != self.participants)


@dataclass
class _State:
    log: ParticipantLog
    in_flight: Optional[tuple[int, int, float]] = None  # (trial id, choice, rt) of a POST without answer
    external_id: str = ""


def _phase_one(server: ServerProcess, slug: str, states: list[_State], kill_after: int, seed: int) -> None:
    """Participants answer until the server dies; the server is killed after ``kill_after`` acks."""
    host, port = "127.0.0.1", server.port
    acked = [0]
    lock = threading.Lock()
    killed = threading.Event()

    def body(state: _State) -> None:
        rng = random.Random(seed * 7919 + state.log.index)
        client = Participant(host, port, slug, state.log, timeout=10)
        try:
            if not client.start(state.external_id):
                return
            data: Optional[dict[str, Any]] = None
            while True:
                if data is None:  # the first trial; later ones come with each answer's reply (as on the page)
                    status, data, _ms = client._request("GET", "/api/v1/trial", token=state.log.token)
                    if status != 200:
                        state.log.errors.append(f"phase 1 GET {status} {data}")
                        return
                if data.get("finished"):
                    return
                trial = data["trial"]
                choice, rt = rng.randrange(2), round(rng.uniform(300, 1500), 1)
                state.in_flight = (int(trial["id"]), choice, rt)
                status, reply, _ms = client._request("POST", f"/api/v1/trials/{trial['id']}/response?next=1",
                                                     {"choice": choice, "rt_ms": rt}, token=state.log.token)
                if status != 200:
                    state.log.errors.append(f"phase 1 POST {status} {reply}")
                    return
                data = reply["next"]
                state.in_flight = None
                state.log.acked.setdefault(int(trial["id"]), choice)
                with lock:
                    acked[0] += 1
                    if acked[0] >= kill_after and not killed.is_set():
                        killed.set()
        except TransportError:
            return  # the server died under us: expected
        finally:
            client.close()

    threads = [threading.Thread(target=body, args=(s,), daemon=True) for s in states]
    for t in threads:
        t.start()
    killed.wait(timeout=120)
    server.kill()  # SIGKILL to master and workers, requests in flight
    for t in threads:
        t.join(30)


def _phase_two(server: ServerProcess, slug: str, states: list[_State], database_url: str,
               result: CrashResult, seed: int) -> None:
    """Every participant resumes, replays its in-flight response, checks its position, finishes."""
    from sqlalchemy import text

    from study_server.db import make_engine

    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = {int(tid): int(pos) for tid, pos in conn.execute(text(
            "SELECT t.id, t.position FROM response r JOIN trial t ON t.id = r.trial_id"))}
        conn.rollback()
    engine.dispose()
    result.in_flight_at_kill = sum(s.in_flight is not None for s in states)
    result.in_flight_stored = sum(s.in_flight is not None and s.in_flight[0] in stored for s in states)
    lock = threading.Lock()

    def body(state: _State) -> None:
        rng = random.Random(seed * 104729 + state.log.index)
        client = Participant("127.0.0.1", server.port, slug, state.log, timeout=30)
        old_pid = state.log.participant_id
        try:
            status, data, _ms = client._request("POST", f"/api/v1/experiments/{slug}/participants",
                                                {"external_id": state.external_id, "params": {}})
            if status != 200 or not data.get("resumed") or data.get("participant_id") != old_pid:
                state.log.errors.append(f"resume {status} {data} (was {old_pid})")
                return
            state.log.token = data["token"]
            with lock:
                result.resumed += 1
            if state.in_flight is not None:  # the client does not know: send it again
                tid, choice, rt = state.in_flight
                status, reply, _ms = client._request("POST", f"/api/v1/trials/{tid}/response",
                                                     {"choice": choice, "rt_ms": rt}, token=state.log.token)
                if status != 200:
                    with lock:
                        result.replay_errors += 1
                    state.log.errors.append(f"replay {status} {reply}")
                    return
                state.log.acked.setdefault(tid, choice)
            first = True
            data: Optional[dict[str, Any]] = None
            while True:
                if data is None:  # after the restart the page reloads and asks for the current trial
                    status, data, _ms = client._request("GET", "/api/v1/trial", token=state.log.token)
                    if status != 200:
                        state.log.errors.append(f"phase 2 GET {status} {data}")
                        return
                if first:
                    answered = len(state.log.acked)
                    position = None if data.get("finished") else data["trial"]["position"]
                    expected_finished = answered == result.trials_each
                    if (position is None) != expected_finished or (position is not None and position != answered + 1):
                        with lock:
                            result.wrong_resume += 1
                        state.log.errors.append(f"resumed at {position}, {answered} answered")
                    first = False
                if data.get("finished"):
                    state.log.finished = True
                    return
                trial = data["trial"]
                choice, rt = rng.randrange(2), round(rng.uniform(300, 1500), 1)
                status, reply, _ms = client._request("POST", f"/api/v1/trials/{trial['id']}/response?next=1",
                                                     {"choice": choice, "rt_ms": rt}, token=state.log.token)
                if status != 200:
                    state.log.errors.append(f"phase 2 POST {status} {reply}")
                    return
                state.log.acked.setdefault(int(trial["id"]), choice)
                data = reply["next"]
        except TransportError as exc:
            state.log.errors.append(f"phase 2 transport {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=body, args=(s,), daemon=True) for s in states]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def crash_run(kind: str, database_url: str, workdir: Path, participants: int = 40, trials: int = 12,
              kill_share: float = 0.4, workers: int = 4, seed: int = 0) -> CrashResult:
    """Load, SIGKILL, restart, resume and finish on ``database_url``; returns the figures."""
    slug = register(database_url, workdir, trials=trials, practice=0, catch=0, slug="crash")
    result = CrashResult(db=kind, participants=participants, trials_each=trials)
    states = [_State(ParticipantLog(i), external_id=f"crash-{seed}-{i}") for i in range(participants)]
    server = ServerProcess(database_url, workdir / "instance", workers=workers)
    server.start()
    try:
        _phase_one(server, slug, states, max(1, int(kill_share * participants * trials)), seed)
        result.acked_before_kill = sum(len(s.log.acked) for s in states)
        t0 = time.perf_counter()
        server.start()
        result.restart_s = round(time.perf_counter() - t0, 2)
        _phase_two(server, slug, states, database_url, result, seed)
    finally:
        server.stop()
    logs = [s.log for s in states]
    check = check_database(database_url, logs)
    result.finished = sum(log.finished for log in logs)
    result.acked_total, result.rows = check.acked, check.rows
    result.lost, result.duplicated = check.lost, check.duplicated
    result.unacked_rows, result.wrong_position = check.unacked_rows, check.wrong_position
    result.errors = [e for log in logs for e in log.errors][:10]
    return result


def _print(r: CrashResult) -> None:
    print(f"\n== {r.db}: SIGKILL of gunicorn (master + workers) under load, {r.participants} participants "
          f"x {r.trials_each} trials ==")
    print(f"  acknowledged before the kill {r.acked_before_kill}; requests in flight {r.in_flight_at_kill} "
          f"(stored anyway: {r.in_flight_stored}); restart to healthy {r.restart_s} s")
    print(f"  resumed as the same participant {r.resumed}/{r.participants}; resumed at a wrong trial "
          f"{r.wrong_resume}; replayed in-flight responses refused {r.replay_errors}")
    print(f"  finished {r.finished}/{r.participants}; acknowledged {r.acked_total}; rows {r.rows}")
    print(f"  lost {r.lost}   duplicated {r.duplicated}   stored-but-unacked {r.unacked_rows}   "
          f"wrong positions {r.wrong_position}   -> {'OK' if r.ok else 'FAILED'}")
    for e in r.errors:
        print(f"  error: {e}")


def main(argv: Optional[list[str]] = None) -> int:
    """Command line entry point; exits 1 when anything was lost, duplicated or resumed wrongly."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--participants", type=int, default=100)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--kill-share", type=float, default=0.4, help="kill after this share of all responses")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--rounds", type=int, default=1, help="repeat the whole run (fresh database each time)")
    p.add_argument("--postgres-url", default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: list[dict[str, Any]] = []
    ok = True
    for round_ in range(args.rounds):
        for kind in kinds:
            with tempfile.TemporaryDirectory(prefix=f"isp-crash-{kind}-") as tmp:
                with database(kind, Path(tmp), args.postgres_url) as url:
                    r = crash_run(kind, url, Path(tmp), args.participants, args.trials, args.kill_share,
                                  args.workers, seed=round_)
            _print(r)
            ok = ok and r.ok
            results.append(asdict(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
