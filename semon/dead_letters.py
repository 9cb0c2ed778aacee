"""`semon dead-letters list|replay`: what the ingester kept as dead letters, and re-ingesting those that are valid
now (for example a monitor that published before it was registered), through the ingester's own parser and writer
(docs/ingest.md, "Replaying dead letters")."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click
import psycopg

from semon.config import Config
from semon.db import connect
from semon.migrate import migrate

# The ingester and the rules are imported where they are used: `semon --help` must not load them.
if TYPE_CHECKING:
    from ingest.messages import Parsed
    from ingest.writer import BatchWriter, DatabaseLookup, WriteResult
    from models.rules.runtime import RuleRunner

# The categories the ingester files dead letters under (its metric semon_ingest_dead_lettered_total's labels).
CATEGORIES = ("bad_topic", "unknown_equipment", "wrong_type", "not_json", "bad_ts", "bad_seq", "bad_field",
              "bad_event", "bad_status", "database_refused")
# Any fixed number: two replays at once would both write each message (harmlessly, the writer stores it once) and
# report it twice.
_LOCK_KEY = 0x5E3019
_BATCH = 500


@dataclass
class ReplaySummary:
    """What one replay did."""

    written: WriteResult = field(default_factory=lambda: _write_result())
    replayed: int = 0                       # dead letters that went through the writer and are marked replayed
    skipped_statuses: int = 0               # status messages: marked, not written (see replay)
    still_invalid: Counter[str] = field(default_factory=Counter)  # by category, as the parser files them now

    def __str__(self) -> str:
        text = (f"replayed {self.replayed} dead letter(s): {self.written.stored} stored, "
                f"{self.written.duplicates} already stored")
        if self.written.fields_refused or self.written.fields_misspelt:
            text += (f" ({self.written.fields_refused} field(s) refused, {self.written.fields_misspelt} likely "
                     "misspelt, in rejected_fields)")
        if self.skipped_statuses:
            text += f"; {self.skipped_statuses} status message(s) not replayed (a status counts only when it is sent)"
        if self.still_invalid:
            detail = ", ".join(f"{category} {n}" for category, n in sorted(self.still_invalid.items()))
            text += f"; {sum(self.still_invalid.values())} still invalid, kept ({detail})"
        return text


def _write_result() -> WriteResult:
    from ingest.writer import WriteResult

    return WriteResult()


def parse_since(text: str, time_zone: str, now: datetime | None = None) -> datetime:
    """`--since`: an age (30m, 12h, 7d), a date (its midnight in the users' zone) or an RFC 3339 time."""
    from simulators.run import parse_history

    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time(), ZoneInfo(time_zone))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return (now or datetime.now(UTC)) - timedelta(seconds=parse_history(text))
        except ValueError:
            raise ValueError(f"{text!r} is not an age (30m, 12h, 7d), a date (2026-11-22) or a time "
                             "(2026-11-22T08:00:00+08:00)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs its UTC offset, like 2026-11-22T08:00:00+08:00")
    return moment


def _rules(config: Config, lookup: DatabaseLookup) -> RuleRunner | None:
    # As the ingester runs them (ingest/service.py): the rules ignore a sample older than the equipment's rule
    # state, so replaying old telemetry cannot rewind them.
    from models.rules.engine import Detector
    from models.rules.runtime import RuleRunner
    from models.rules.settings import settings_from_config

    if not config.rules_enabled:
        return None
    return RuleRunner(Detector(settings_from_config(config), lookup.severities, lookup.labels), lookup.equipment_info)


def replay(config: Config, category: str | None = None, since: datetime | None = None) -> ReplaySummary:
    """Re-ingest the dead letters not yet replayed that the parser accepts now; mark each one written as replayed."""
    summary = ReplaySummary()
    with connect(config.database_url, time_zone=config.time_zone) as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_LOCK_KEY,)).fetchone()["ok"]:
            raise click.ClickException("another dead-letter replay is running; try again when it has finished")
        conn.commit()
        try:
            _replay_all(conn, config, category, since, summary)
        finally:
            # Explicitly: a closed connection's session, and its lock, can outlive it by a moment.
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.commit()
    return summary


def _replay_all(conn: psycopg.Connection, config: Config, category: str | None, since: datetime | None,
                summary: ReplaySummary) -> None:
    from ingest.messages import parse_message
    from ingest.writer import BatchWriter, DatabaseLookup

    lookup = DatabaseLookup(conn)
    writer = BatchWriter(conn, _rules(config, lookup))
    after = 0
    while True:
        rows = conn.execute(
            "SELECT id, topic, payload FROM dead_letter WHERE replayed_at IS NULL AND id > %(after)s"
            " AND (%(category)s::text IS NULL OR category = %(category)s)"
            " AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)"
            " ORDER BY id LIMIT %(limit)s",
            {"after": after, "category": category, "since": since, "limit": _BATCH}).fetchall()
        conn.commit()
        if not rows:
            break
        after = rows[-1]["id"]
        lookup.refresh()
        parsed = [(row["id"], parse_message(row["topic"], bytes(row["payload"]), lookup)) for row in rows]
        _replay_batch(conn, writer, parsed, summary)


def _replay_batch(conn: psycopg.Connection, writer: BatchWriter, parsed: list[tuple[int, Parsed]],
                  summary: ReplaySummary) -> None:
    from ingest.messages import Rejected, Status

    valid: list[tuple[int, Parsed]] = []
    skipped: list[int] = []
    for dead_letter_id, item in parsed:
        if isinstance(item, Rejected):
            summary.still_invalid[item.category] += 1
        elif isinstance(item, Status):
            # A status says what the monitor was when it sent it: replayed now, an old "online" would show a monitor
            # online that may have been gone for days. Its next heartbeat says it again.
            skipped.append(dead_letter_id)
        else:
            valid.append((dead_letter_id, item))
    if skipped:
        with conn.transaction():
            _mark(conn, skipped, "skipped")
        summary.skipped_statuses += len(skipped)
    if not valid:
        return
    try:
        _write(conn, writer, valid, summary)
    except psycopg.DataError:
        # A value the database refuses, found one by one as the ingester finds it: that dead letter stays as it is.
        for one in valid:
            try:
                _write(conn, writer, [one], summary)
            except psycopg.DataError:
                summary.still_invalid["database_refused"] += 1


def _write(conn: psycopg.Connection, writer: BatchWriter, valid: list[tuple[int, Parsed]],
           summary: ReplaySummary) -> None:
    # The writer's transaction nests in this one as a savepoint: the messages and their marks commit together.
    with conn.transaction():
        result = writer.write([item for _, item in valid])
        _mark(conn, [dead_letter_id for dead_letter_id, _ in valid], "replayed")
    summary.written.add(result)
    summary.replayed += len(valid)


def _mark(conn: psycopg.Connection, ids: list[int], result: str) -> None:
    conn.execute("UPDATE dead_letter SET replayed_at = now(), replay_result = %s WHERE id = ANY(%s)", (result, ids))


def counts(config: Config) -> list[dict]:
    """Per category: dead letters waiting (not replayed), replayed, the oldest waiting, and the codes most seen."""
    with connect(config.database_url, time_zone=config.time_zone) as conn:
        return conn.execute("""
            SELECT COALESCE(category, 'unknown') AS category,
                   count(*) FILTER (WHERE replayed_at IS NULL) AS waiting,
                   count(*) FILTER (WHERE replayed_at IS NOT NULL) AS replayed,
                   min(received_at) FILTER (WHERE replayed_at IS NULL) AS oldest_waiting,
                   (SELECT string_agg(code || ' ×' || n, ', ' ORDER BY n DESC, code)
                      FROM (SELECT split_part(d2.topic, '/', 4) AS code, count(*) AS n FROM dead_letter d2
                             WHERE d2.category IS NOT DISTINCT FROM d.category AND d2.replayed_at IS NULL
                             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5) AS top) AS codes
              FROM dead_letter d GROUP BY d.category ORDER BY waiting DESC, category""").fetchall()


@click.group("dead-letters")
def dead_letters() -> None:
    """List the dead letters by reason, or replay those that are valid now (docs/ingest.md)."""


@dead_letters.command("list")
@click.pass_obj
def list_cmd(ctx: Any) -> None:
    """Count the dead letters by reason: waiting, replayed, the oldest waiting, and the codes most seen."""
    migrate(ctx.config.database_url)
    rows = counts(ctx.config)
    if not rows:
        click.echo("no dead letters")
        return
    click.echo(f"{'reason':<18} {'waiting':>8} {'replayed':>9}  oldest waiting             codes most seen")
    for row in rows:
        oldest = row["oldest_waiting"].isoformat(timespec="seconds") if row["oldest_waiting"] else "-"
        click.echo(f"{row['category']:<18} {row['waiting']:>8} {row['replayed']:>9}  {oldest:<26} "
                   f"{row['codes'] or '-'}")


@dead_letters.command("replay")
@click.option("--reason", type=click.Choice(CATEGORIES), default=None,
              help="only dead letters filed under this reason (as `semon dead-letters list` shows them)")
@click.option("--since", default=None, metavar="AGE|DATE|TIME",
              help="only dead letters received since: an age (12h, 7d), a date (its local midnight) or a time")
@click.pass_obj
def replay_cmd(ctx: Any, reason: str | None, since: str | None) -> None:
    """Re-ingest the dead letters that are valid now; each replayed one is marked, none stored twice."""
    config = ctx.config
    try:
        since_at = None if since is None else parse_since(since, config.time_zone)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    migrate(config.database_url)
    click.echo(replay(config, reason, since_at))
