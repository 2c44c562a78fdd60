"""Ending the early pass's workers with tasks in their hands (`curate.engine._EarlyPass`), many
times over: whether an end ever hangs, and how long ending takes, the way curate ends a pool
(its workers told to stop, they end on their own: `curate.engine._Pool.terminate`) and by
CPython's pool `terminate` alone (each worker killed by a signal, wherever it is).

    .venv/bin/python bench/pool_teardown.py [--pools 3000] [--way halt|terminate] [--seed 0]

Each round forks an early pass of 2 workers (at the lowest priority, as in a run), hands them
batches of documents whose one stage spins up to 4 ms on each, waits a random 0-10 ms (the
decision), then ends the pass. An end that takes more than --hang seconds is a hang: the round
and every thread's stack are printed and the script exits with status 1. Otherwise it prints the rounds
and how long ending took (median, 99th percentile, longest). A worker killed while it writes
a result holds the results pipe's lock for good, and CPython's teardown then waits for that
lock forever: with --way terminate that showed in two of five runs of 1,000 rounds (at rounds
494 and 484) on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import pickle
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate import engine  # noqa: E402
from curate.document import Document  # noqa: E402
from curate.stages.base import DocumentStage, RunContext, StageSettings  # noqa: E402


class Spin(DocumentStage):
    """Keeps a worker busy on each document for up to 4 ms (as long as its text says)."""

    name = "spin"
    Settings = StageSettings

    def process(self, doc: Document) -> None:
        until = time.perf_counter() + int(doc.text) / 1e6
        while time.perf_counter() < until:
            pass


def _text(doc: Document) -> bytes:
    return doc.text.encode()


def one_round(rng: random.Random, phase: engine.Phase) -> float:
    """One early pass forked, fed and ended; the seconds its end took."""
    docs = [pickle.dumps(Document.new(f"d{i}", str(rng.randrange(4000)))) for i in range(rng.randrange(8, 64))]
    with engine._EarlyPass(phase, 2, 4, None, 1 << 30) as early:
        early.fork()
        early.start(iter(docs), bytearray(len(docs)))
        time.sleep(rng.random() / 100)
        start = time.perf_counter()
        early.made()
        early._exit.close()
        return time.perf_counter() - start


def _hung(round_number: int) -> None:
    """A round's end took too long: every thread's stack, and exit with status 1."""
    print(f"hung in round {round_number}: every thread's stack follows", file=sys.stderr, flush=True)
    faulthandler.dump_traceback(all_threads=True)
    os._exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=3000)
    parser.add_argument("--way", choices=("halt", "terminate"), default="halt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang", type=float, default=20.0, help="seconds an end may take")
    args = parser.parse_args()
    if args.way == "terminate":  # (tasks never halt, and CPython's terminate ends the pool)
        engine.halted = lambda: False
        engine._Pool._halted_workers_ended = lambda self: True  # type: ignore[method-assign]
    rng = random.Random(args.seed)
    phase = engine.Phase(stages=[Spin(StageSettings(), RunContext(config=None))], finish=_text)
    ends = []
    for n in range(args.pools):
        watchdog = threading.Timer(args.hang, _hung, (n + 1,))
        watchdog.start()
        ends.append(one_round(rng, phase))
        watchdog.cancel()
        if (n + 1) % 500 == 0:
            print(f"{n + 1} rounds", file=sys.stderr, flush=True)
    ends.sort()
    print(
        f"{args.way}: {len(ends)} early passes ended, none hung; ending took "
        f"median {statistics.median(ends) * 1000:.1f} ms, 99th percentile "
        f"{ends[int(len(ends) * 0.99)] * 1000:.1f} ms, longest {ends[-1] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
