"""The dispatcher: turns the notifications outbox into messages that reach people (docs/delivery.md).

One run, `deliver(conn, now, settings, channels)`, in short transactions of its own:
1. expand: due notifications (claimed FOR UPDATE SKIP LOCKED) become one delivery per contact of their party;
2. group: a contact's waiting deliveries become messages — critical ones at once, one by one; the rest after
   delivery_group_wait_s, together, at most every delivery_group_interval_s; robots' per-minute limits combine
   what would exceed them into one message;
3. send: due messages are claimed (FOR UPDATE SKIP LOCKED, with a lease), sent outside any transaction, and their
   outcome recorded under the claim: sent, retried with exponential backoff, failed after delivery_max_attempts,
   or unknown when a channel that is not idempotent gave an ambiguous answer.
A restart or a second replica loses nothing (rows are the state) and doubles nothing a receiver sees twice: every
message carries an idempotency key that is the same on each try."""

from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts.channels import RATE_LIMITED, Channel, Message, SendError, Target
from alerts.contacts import ON_DUTY_SQL
from alerts.messages import load_items, render
from semon.config import Config
from semon.vocabulary import SEVERITIES

log = logging.getLogger(__name__)

_GROUP_LOCK = zlib.crc32(b"delivery.group")  # grouping reads rate counts: one replica at a time
_SEVERITY_ORDER = "ARRAY[" + ", ".join(f"'{s}'" for s in SEVERITIES) + "]::text[]"
URGENT_SEVERITY = "critical"


@dataclass(frozen=True)
class DeliverySettings:
    """The delivery_* settings, the users' time zone and the link base."""

    time_zone: str = "Asia/Shanghai"
    base_url: str = "http://127.0.0.1:8000"
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    max_attempts: int = 8
    backoff_s: float = 15.0
    backoff_max_s: float = 1800.0
    lease_s: float = 120.0
    batch_size: int = 200
    workers: int = 8
    robot_per_minute: int = 20
    timeout_s: float = 10.0
    expand_batch: int = 20000
    # One run sends batches until nothing is due or this many have gone (the next run goes on).
    max_batches: int = 50

    @property
    def per_claim(self) -> int:
        """Messages claimed at once: no more than the senders can finish within the lease even if each send takes
        twice the channel timeout (MQTT: connecting, then the acknowledgement), so no claim lapses mid-send."""
        return max(1, min(self.batch_size, self.workers * int(self.lease_s // (2 * self.timeout_s))))

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed try: backoff_s doubled each time, at most backoff_max_s."""
        return timedelta(seconds=min(self.backoff_s * 2 ** max(attempts - 1, 0), self.backoff_max_s))


def settings_from_config(config: Config) -> DeliverySettings:
    """The dispatcher's settings from semon's."""
    return DeliverySettings(
        time_zone=config.time_zone, base_url=config.web_public_url, group_wait_s=config.delivery_group_wait_s,
        group_interval_s=config.delivery_group_interval_s, max_attempts=config.delivery_max_attempts,
        backoff_s=config.delivery_backoff_s, backoff_max_s=config.delivery_backoff_max_s,
        lease_s=config.delivery_lease_s, batch_size=config.delivery_batch_size, workers=config.delivery_workers,
        robot_per_minute=config.delivery_robot_per_minute, timeout_s=config.delivery_timeout_s)


@dataclass
class RunCounts:
    """What one run did."""

    expanded: int = 0
    no_contact: int = 0
    messages: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    errors: list[str] = field(default_factory=list)


# --- 1. expand -------------------------------------------------------------------------------------------------------

# Each due notification's contacts: of its party, active, wanting its severity (reminders count as low). The best
# tier present wins: 1 the role asked for (any role when none is asked) and on duty; 2 that role off duty; 3 another
# role on duty; 4 anyone of the party. So an escalation to a supervisor nobody registered, or an alert at night,
# still reaches someone (docs/delivery.md). A party with no contact gets its registry e-mail, or nothing: then the
# notification is marked failed, visible, with the reason.
_EXPAND = f"""
WITH due AS (
    SELECT n.id, n.firm_id, n.use_unit_id, n.district_id, n.contact_role, n.created_at,
           COALESCE(a.severity, 'low') AS severity
      FROM notifications n LEFT JOIN alerts a ON a.id = n.alert_id
     WHERE n.status = 'pending' AND n.expanded_at IS NULL AND n.next_attempt_at <= %(now)s
     ORDER BY a.severity IS NOT DISTINCT FROM '{URGENT_SEVERITY}' DESC, n.id LIMIT %(limit)s
       FOR UPDATE OF n SKIP LOCKED),
candidates AS (
    SELECT d.id AS notification_id, d.created_at, d.severity = '{URGENT_SEVERITY}' AS urgent, c.id AS contact_id,
           c.channel,
           CASE WHEN c.channel <> 'mqtt' THEN c.address WHEN c.firm_id IS NOT NULL THEN c.firm_id::text
                WHEN c.use_unit_id IS NOT NULL THEN 'u' || c.use_unit_id ELSE 'd' || c.district_id END AS address,
           CASE WHEN d.contact_role IS NULL OR c.role = d.contact_role
                THEN CASE WHEN {ON_DUTY_SQL} THEN 1 ELSE 2 END
                ELSE CASE WHEN {ON_DUTY_SQL} THEN 3 ELSE 4 END END AS tier
      FROM due d
      JOIN contacts c ON c.active
       AND (c.firm_id = d.firm_id OR c.use_unit_id = d.use_unit_id OR c.district_id = d.district_id)
       AND array_position({_SEVERITY_ORDER}, d.severity) <= array_position({_SEVERITY_ORDER}, c.min_severity)),
chosen AS (
    SELECT * FROM (SELECT *, min(tier) OVER (PARTITION BY notification_id) AS best FROM candidates) t
     WHERE tier = best),
registry AS (
    SELECT d.id AS notification_id, d.created_at, d.severity = '{URGENT_SEVERITY}' AS urgent,
           NULLIF(COALESCE(f.email, u.email, r.email), '') AS email
      FROM due d
      LEFT JOIN maintenance_firms f ON f.id = d.firm_id LEFT JOIN use_units u ON u.id = d.use_unit_id
      LEFT JOIN districts r ON r.id = d.district_id
     WHERE NOT EXISTS (SELECT FROM contacts c WHERE c.active
                          AND (c.firm_id = d.firm_id OR c.use_unit_id = d.use_unit_id OR c.district_id = d.district_id)
                          AND array_position({_SEVERITY_ORDER}, d.severity)
                              <= array_position({_SEVERITY_ORDER}, c.min_severity))),
inserted AS (
    INSERT INTO deliveries (notification_id, contact_id, channel, address, urgent, created_at)
    SELECT notification_id, contact_id, channel, address, urgent, created_at FROM chosen
    UNION ALL
    SELECT notification_id, NULL, 'email', email, urgent, created_at FROM registry WHERE email IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING notification_id),
nobody AS (
    UPDATE notifications n SET status = 'failed', expanded_at = %(now)s,
           last_error = 'no contact: the party has no contact for this severity and no e-mail in the registry'
      FROM registry r WHERE n.id = r.notification_id AND r.email IS NULL
    RETURNING n.id),
expanded AS (
    UPDATE notifications n SET expanded_at = %(now)s
      FROM due d WHERE n.id = d.id AND NOT EXISTS (SELECT FROM nobody WHERE nobody.id = d.id)
    RETURNING n.id)
SELECT (SELECT count(*) FROM expanded) AS expanded, (SELECT count(*) FROM nobody) AS nobody,
       (SELECT count(*) FROM inserted) AS deliveries"""


def expand(conn: psycopg.Connection, now: datetime, settings: DeliverySettings) -> tuple[int, int]:
    """Resolve due notifications into deliveries; (notifications expanded, notifications with nobody to tell)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_EXPAND, {"now": now, "limit": settings.expand_batch}).fetchone()
    assert row is not None
    return row["expanded"], row["nobody"]


# --- 2. group --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Waiting:
    id: int
    notification_id: int
    contact_id: int | None
    channel: str
    address: str
    urgent: bool
    created_at: datetime


def _plan(waiting: list[_Waiting], now: datetime, settings: DeliverySettings,
          last_grouped: Mapping[tuple, datetime], sent_last_minute: Mapping[str, int]) -> list[list[_Waiting]]:
    """Which waiting deliveries go out now, and together in which messages."""
    by_contact: dict[tuple, list[_Waiting]] = defaultdict(list)
    for delivery in waiting:
        by_contact[(delivery.contact_id, delivery.channel, delivery.address)].append(delivery)
    used: dict[str, int] = defaultdict(int)
    plan: list[list[_Waiting]] = []

    def slots(channel: str, address: str) -> int | None:
        if channel not in RATE_LIMITED:
            return None
        return settings.robot_per_minute - sent_last_minute.get(address, 0) - used[address]

    for key, deliveries in by_contact.items():
        _, channel, address = key
        urgent = [d for d in deliveries if d.urgent]
        rest = [d for d in deliveries if not d.urgent]
        free = slots(channel, address)
        if urgent:
            if free is None or len(urgent) <= free:
                plan += [[d] for d in urgent]
                used[address] += len(urgent)
            elif free > 0:
                # Over the robot's limit: the newest go together in one message rather than wait or be dropped.
                plan += [[d] for d in urgent[:free - 1]] + [urgent[free - 1:]]
                used[address] += free
        if not rest:
            continue
        oldest = min(d.created_at for d in rest)
        previous = last_grouped.get(key)
        ready = now >= oldest + timedelta(seconds=settings.group_wait_s) and (
            previous is None or now >= previous + timedelta(seconds=settings.group_interval_s))
        free = slots(channel, address)
        if ready and (free is None or free > 0):
            plan.append(rest)
            used[address] += 1
    return plan


def group(conn: psycopg.Connection, now: datetime, settings: DeliverySettings) -> int:
    """Make the messages that are due from waiting deliveries; how many."""
    made = 0
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_GROUP_LOCK,))
        waiting = [_Waiting(**r) for r in cur.execute(
            "SELECT id, notification_id, contact_id, channel, address, urgent, created_at FROM deliveries"
            " WHERE message_id IS NULL ORDER BY created_at, id").fetchall()]
        if not waiting:
            return 0
        last_grouped = {(r["contact_id"], r["channel"], r["address"]): r["at"] for r in cur.execute(
            "SELECT contact_id, channel, address, max(created_at) AS at FROM delivery_messages"
            " WHERE NOT urgent AND created_at > %(since)s GROUP BY 1, 2, 3",
            {"since": now - timedelta(seconds=settings.group_interval_s)}).fetchall()}
        sent_last_minute = {r["address"]: r["n"] for r in cur.execute(
            "SELECT address, count(*) AS n FROM delivery_messages WHERE channel = ANY (%(robots)s)"
            " AND created_at > %(since)s GROUP BY address",
            {"robots": list(RATE_LIMITED), "since": now - timedelta(seconds=60)}).fetchall()}
        plan = _plan(waiting, now, settings, last_grouped, sent_last_minute)
        if not plan:
            return 0
        items = {i.notification_id: i for i in load_items(conn, [d.notification_id for ds in plan for d in ds])}
        message_ids = [r["id"] for r in cur.execute(
            "SELECT nextval(pg_get_serial_sequence('delivery_messages', 'id')) AS id FROM generate_series(1, %s)",
            (len(plan),)).fetchall()]
        rows = []
        for message_id, deliveries in zip(message_ids, plan, strict=True):
            first = deliveries[0]
            rendered = render([items[d.notification_id] for d in deliveries], settings.time_zone, settings.base_url)
            body = {"subject": rendered.subject, "text": rendered.text, "markdown": rendered.markdown,
                    "payload": rendered.payload}
            rows.append((message_id, first.contact_id, first.channel, first.address,
                         any(d.urgent for d in deliveries), Jsonb(body), now, now))
        cur.executemany("INSERT INTO delivery_messages (id, contact_id, channel, address, urgent, body, created_at,"
                        " next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
        pairs = [(d.id, message_id) for message_id, deliveries in zip(message_ids, plan, strict=True)
                 for d in deliveries]
        cur.execute("UPDATE deliveries d SET message_id = u.message_id"
                    " FROM unnest(%s::bigint[], %s::bigint[]) AS u (id, message_id) WHERE d.id = u.id",
                    ([p[0] for p in pairs], [p[1] for p in pairs]))
        made = len(plan)
    return made


# --- 3. send ---------------------------------------------------------------------------------------------------------

# A non-idempotent channel's message whose sender vanished mid-send may have gone out: a person checks it.
_ABANDONED = """
UPDATE delivery_messages SET status = 'unknown', claim = NULL, claimed_until = NULL,
       last_error = 'the sender stopped while sending (lease ran out): check with the gateway whether it went out'
 WHERE status = 'sending' AND claimed_until < %(now)s AND channel = ANY (%(not_idempotent)s)
RETURNING id"""
_CLAIM = """
UPDATE delivery_messages m SET status = 'sending', attempts = m.attempts + 1, claim = gen_random_uuid(),
       claimed_until = %(until)s
  FROM (SELECT id FROM delivery_messages
         WHERE (status = 'pending' AND next_attempt_at <= %(now)s) OR (status = 'sending' AND claimed_until < %(now)s)
         ORDER BY urgent DESC, next_attempt_at, id LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED) due
 WHERE m.id = due.id
RETURNING m.id, m.idempotency_key, m.channel, m.address, m.contact_id, m.body, m.attempts, m.claim"""


@dataclass(frozen=True)
class _Claimed:
    id: int
    idempotency_key: str
    channel: str
    address: str
    contact_id: int | None
    body: dict[str, Any]
    attempts: int
    claim: Any
    secret: str = ""


def claim(conn: psycopg.Connection, now: datetime, settings: DeliverySettings,
          channels: Mapping[str, Channel]) -> tuple[list[_Claimed], int]:
    """Claim due messages for `lease_s`; (the claimed, how many abandoned non-idempotent sends became unknown)."""
    not_idempotent = [name for name, channel in channels.items() if not channel.idempotent]
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        abandoned = cur.execute(_ABANDONED, {"now": now, "not_idempotent": not_idempotent}).fetchall()
        rows = cur.execute(_CLAIM, {"now": now, "until": now + timedelta(seconds=settings.lease_s),
                                    "limit": settings.per_claim}).fetchall()
        secrets = {r["id"]: r["secret"] for r in cur.execute(
            "SELECT id, secret FROM contacts WHERE id = ANY (%s)",
            ([r["contact_id"] for r in rows if r["contact_id"] is not None],)).fetchall()}
    claimed = [_Claimed(**r, secret=secrets.get(r["contact_id"], "")) for r in rows]
    return claimed, len(abandoned)


def _send(channels: Mapping[str, Channel], message: _Claimed) -> SendError | None:
    channel = channels.get(message.channel)
    if channel is None:
        return SendError(f"no channel {message.channel!r}", permanent=True)
    body = message.body
    try:
        channel.send(Target(message.channel, message.address, message.secret, message.address),
                     Message(message.idempotency_key, body["subject"], body["text"], body["markdown"],
                             body["payload"]), datetime.now(UTC))  # signatures: the receivers' clocks are real
    except SendError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a channel's bug must not stop the others' messages
        log.exception("delivery: the %s channel failed on message %s", message.channel, message.id)
        return SendError(f"{type(exc).__name__}: {exc}", ambiguous=True)
    return None


def outcome(message: _Claimed, error: SendError | None, now: datetime, settings: DeliverySettings,
            channel_idempotent: bool) -> tuple[str, datetime | None, str | None]:
    """A send's outcome: the message's new status, when it is tried next, and why."""
    if error is None:
        return "sent", None, None
    if error.permanent or message.attempts >= settings.max_attempts:
        return "failed", None, str(error)
    if error.ambiguous and not channel_idempotent:
        return "unknown", None, f"{error} — may have gone out: check before sending again"
    return "pending", now + settings.backoff(message.attempts), str(error)


def record(conn: psycopg.Connection, results: list[tuple[_Claimed, tuple[str, datetime | None, str | None]]],
           now: datetime) -> dict[int, str]:
    """Write outcomes under their claims in one transaction; the new status of each message whose claim held (a
    lapsed claim belongs to another sender now)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("""
            UPDATE delivery_messages m SET status = o.status, claim = NULL, claimed_until = NULL,
                   sent_at = CASE WHEN o.status = 'sent' THEN %(now)s::timestamptz END,
                   next_attempt_at = COALESCE(o.next_at, m.next_attempt_at),
                   last_error = COALESCE(o.reason, m.last_error)
              FROM unnest(%(ids)s::bigint[], %(claims)s::uuid[], %(statuses)s::text[], %(nexts)s::timestamptz[],
                          %(reasons)s::text[]) AS o (id, claim, status, next_at, reason)
             WHERE m.id = o.id AND m.claim = o.claim
            RETURNING m.id, m.status""", {
            "now": now, "ids": [m.id for m, _ in results], "claims": [m.claim for m, _ in results],
            "statuses": [o[0] for _, o in results], "nexts": [o[1] for _, o in results],
            "reasons": [o[2] for _, o in results]}).fetchall()
        done = {r["id"]: r["status"] for r in rows}
        if done:
            _settle_notifications(conn, list(done), now)
    return done


def _settle_notifications(conn: psycopg.Connection, message_ids: list[int], now: datetime) -> None:
    """The notifications these messages carry: sent once all their deliveries are, failed or unknown once one is."""
    conn.execute("""
        WITH touched AS (SELECT DISTINCT notification_id FROM deliveries WHERE message_id = ANY (%(ids)s)),
        state AS (
            SELECT t.notification_id, bool_and(m.status = 'sent') AS all_sent,
                   bool_or(m.status = 'failed') AS any_failed, bool_or(m.status = 'unknown') AS any_unknown,
                   max(m.attempts) AS attempts, max(m.last_error) FILTER (WHERE m.status <> 'sent') AS error
              FROM touched t JOIN deliveries d ON d.notification_id = t.notification_id
              LEFT JOIN delivery_messages m ON m.id = d.message_id
             GROUP BY t.notification_id)
        UPDATE notifications n
           SET status = CASE WHEN s.any_failed THEN 'failed' WHEN s.any_unknown THEN 'unknown' ELSE 'sent' END,
               sent_at = CASE WHEN s.all_sent THEN %(now)s::timestamptz END,
               attempts = GREATEST(n.attempts, s.attempts), last_error = s.error
          FROM state s
         WHERE n.id = s.notification_id AND n.status = 'pending'
           AND (s.all_sent IS TRUE OR s.any_failed OR s.any_unknown)""", {"ids": message_ids, "now": now})


def send_due(conn: psycopg.Connection, now: datetime, settings: DeliverySettings,
             channels: Mapping[str, Channel], counts: RunCounts) -> None:
    """Claim due messages, send them outside any transaction, record each outcome; batch after batch."""
    with ThreadPoolExecutor(max_workers=settings.workers) as pool:
        for _ in range(settings.max_batches):
            claimed, abandoned = claim(conn, now, settings, channels)
            counts.unknown += abandoned
            if not claimed:
                return
            outcomes = list(pool.map(lambda m: _send(channels, m), claimed))
            _record_all(conn, claimed, outcomes, now, settings, channels, counts)
            if len(claimed) < settings.per_claim:
                return


def _record_all(conn: psycopg.Connection, claimed: list[_Claimed], outcomes: list[SendError | None], now: datetime,
                settings: DeliverySettings, channels: Mapping[str, Channel], counts: RunCounts) -> None:
    results = []
    for message, error in zip(claimed, outcomes, strict=True):
        channel = channels.get(message.channel)
        results.append((message, outcome(message, error, now, settings, channel.idempotent if channel else True)))
    done = record(conn, results, now)
    for message, (status, _, reason) in results:
        if message.id not in done:
            continue
        if status == "sent":
            counts.sent += 1
        elif status == "pending":
            counts.retried += 1
        else:
            setattr(counts, status, getattr(counts, status) + 1)
        if reason is not None:
            counts.errors.append(f"message {message.id} ({message.channel}): {reason}")
            log.warning("delivery: message %s to %s: %s (%s)", message.id, message.channel, reason, status)


def deliver(conn: psycopg.Connection, now: datetime, settings: DeliverySettings,
            channels: Mapping[str, Channel]) -> RunCounts:
    """One run of the dispatcher on an autocommit connection: expand, group, send (module docstring)."""
    counts = RunCounts()
    counts.expanded, counts.no_contact = expand(conn, now, settings)
    counts.messages = group(conn, now, settings)
    send_due(conn, now, settings, channels, counts)
    return counts
