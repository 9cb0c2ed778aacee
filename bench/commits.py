"""When did a row become visible? Commit times observed from outside the ingester.

received_at (now() in the ingester's transaction) is when the transaction *started*: it misses the COPY, the
INSERT ... ON CONFLICT and the commit itself, so it understates latency. The server does not record commit
times (track_commit_timestamp is off, and turning it on needs a restart of a shared server). So a separate
connection asks for the current snapshot every few milliseconds: a transaction is committed at the first
snapshot in which its id is below xmax and not in progress. Each row's inserting transaction is its xmin.
The commit time found this way is late by at most one poll interval plus one query (about 10 ms), never
early, and it needs nothing from the ingester or any subscriber.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass

import psycopg

POLL_INTERVAL_S = 0.01


@dataclass(frozen=True)
class Snapshot:
    seen_at_ns: int        # time.time_ns() once the answer arrived: the commit happened before this
    xmin: int
    xmax: int
    in_progress: frozenset[int]


def parse_snapshot(text: str) -> tuple[int, int, frozenset[int]]:
    """xmin, xmax and the in-progress ids of a pg_snapshot's text form "xmin:xmax:xip,xip"."""
    xmin, xmax, xip = text.split(":")
    return int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x)


class CommitWatcher:
    """Records the server's snapshots in a background thread while started."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.snapshots: list[Snapshot] = []
        # Seconds (from, to) in which the server could not be asked, e.g. while someone restarted it: a
        # transaction that committed then is seen when watching resumes, so its commit time is late.
        self.gaps: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="commit-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.error is not None:
            raise RuntimeError(f"the commit watcher failed: {self.error}")

    def _run(self) -> None:
        lost_at: float | None = None
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.database_url, autocommit=True, application_name="semon-bench",
                                     connect_timeout=5) as conn:
                    if lost_at is not None:
                        self.gaps.append((lost_at, time.time()))
                        lost_at = None
                    self._poll(conn)
            except psycopg.OperationalError:
                # The server went away (other sessions' fault tests restart the shared one): keep trying.
                lost_at = lost_at or time.time()
                self._stop.wait(0.2)
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self.error = exc
                return

    def _poll(self, conn: psycopg.Connection) -> None:
        # A prepared statement: each poll costs one round trip and almost no server work.
        query = "SELECT pg_current_snapshot()::text"
        while not self._stop.is_set():
            text = conn.execute(query, prepare=True).fetchone()[0]  # type: ignore[index]
            xmin, xmax, xip = parse_snapshot(text)
            self.snapshots.append(Snapshot(time.time_ns(), xmin, xmax, xip))
            self._stop.wait(POLL_INTERVAL_S)

    def commit_times(self, xids32: list[int]) -> dict[int, int]:
        """Visible-since time (ns) of each 32-bit transaction id (a row's xmin) that committed while watching."""
        snapshots = self.snapshots
        if not snapshots:
            return {}
        xmaxes = [s.xmax for s in snapshots]
        epoch_base = snapshots[0].xmax & ~0xFFFFFFFF
        found: dict[int, int] = {}
        for xid32 in xids32:
            # Rows carry 32-bit ids, snapshots 64-bit ones: put the id in the epoch of the watched interval.
            xid = epoch_base | xid32
            if xid < snapshots[0].xmin - (1 << 31):
                xid += 1 << 32
            index = bisect.bisect_right(xmaxes, xid)  # first snapshot whose xmax is above xid
            while index < len(snapshots) and xid in snapshots[index].in_progress:
                index += 1
            # Visible in the very first snapshot: it committed before watching began, at an unknown time.
            if 0 < index < len(snapshots):
                found[xid32] = snapshots[index].seen_at_ns
        return found
