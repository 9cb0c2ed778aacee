"""The contacts of firms, use units and districts (docs/delivery.md): who of a party is told, on which channel, on
which days and hours, from which severity on. Kept and checked here; the admin pages (web/contacts.py) and the
dispatcher (alerts/delivery.py) use this module."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alerts.channels import CHANNELS
from semon import audit
from semon.vocabulary import SEVERITIES

PARTIES = ("firm", "use_unit", "district")
PARTY_TABLES = {"firm": "maintenance_firms", "use_unit": "use_units", "district": "districts"}
ROLES = ("duty", "supervisor", "inspector", "manager")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9-]{5,19}$")
_ROLE = re.compile(r"^[a-z_]{1,32}$")
# The columns the pages show and the audit log keeps; the secret is never among them.
COLUMNS = ("id", "party", "party_id", "party_name", "name", "role", "channel", "address", "has_secret",
           "duty_days", "duty_start", "duty_end", "min_severity", "active")

# Whether contact `c` is on duty at the timestamptz %(now)s, in the session's time zone (the users', time_zone):
# on one of its ISO weekdays, between duty_start and duty_end; a start after the end is a night across midnight.
ON_DUTY_SQL = """(extract(isodow FROM (%(now)s::timestamptz AT TIME ZONE current_setting('TimeZone')))::integer
                   = ANY (c.duty_days)
  AND CASE WHEN c.duty_start <= c.duty_end
           THEN (%(now)s::timestamptz AT TIME ZONE current_setting('TimeZone'))::time >= c.duty_start
            AND (%(now)s::timestamptz AT TIME ZONE current_setting('TimeZone'))::time < c.duty_end
           ELSE (%(now)s::timestamptz AT TIME ZONE current_setting('TimeZone'))::time >= c.duty_start
             OR (%(now)s::timestamptz AT TIME ZONE current_setting('TimeZone'))::time < c.duty_end END)"""


class ContactError(ValueError):
    """A contact's field cannot be used; the message names it."""


@dataclass(frozen=True)
class ContactInput:
    """A contact as the form gives it, checked by `check`."""

    party: str
    party_id: int
    name: str
    channel: str
    address: str
    role: str = "duty"
    secret: str = ""
    duty_days: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    duty_start: time = time(0, 0)
    duty_end: time | None = None  # None: until midnight
    min_severity: str = "low"
    active: bool = True


def check(contact: ContactInput) -> None:
    """Raise ContactError naming the first field that cannot be used."""
    if contact.party not in PARTIES:
        raise ContactError(f"party: expected one of {', '.join(PARTIES)}, not {contact.party!r}")
    if not contact.name.strip() or len(contact.name) > 200:
        raise ContactError("name: 1 to 200 characters")
    if not _ROLE.match(contact.role):
        raise ContactError(f"role: lower-case letters and _ (such as {', '.join(ROLES)}), not {contact.role!r}")
    if contact.channel not in CHANNELS:
        raise ContactError(f"channel: expected one of {', '.join(CHANNELS)}, not {contact.channel!r}")
    if contact.min_severity not in SEVERITIES:
        raise ContactError(f"min_severity: expected one of {', '.join(SEVERITIES)}")
    if not contact.duty_days or not set(contact.duty_days) <= set(range(1, 8)):
        raise ContactError("duty_days: at least one weekday, 1 (Monday) to 7 (Sunday)")
    address = contact.address.strip()
    if contact.channel in ("webhook", "dingtalk", "wecom") and not address.startswith(("https://", "http://")):
        raise ContactError(f"address: a {contact.channel} contact needs an http:// or https:// URL")
    if contact.channel == "email" and not _EMAIL.match(address):
        raise ContactError(f"address: {address!r} is not an e-mail address")
    if contact.channel == "sms" and not _PHONE.match(address):
        raise ContactError(f"address: {address!r} is not a phone number")
    if contact.channel == "mqtt" and address:
        raise ContactError("address: an mqtt contact has none (its topic is sem/v1/alerts/<party>)")


def _party_column(party: str) -> str:
    return f"{party}_id"


def _public(conn: psycopg.Connection, contact_id: int) -> dict[str, Any] | None:
    rows = list_contacts(conn, contact_id=contact_id)
    return rows[0] if rows else None


def list_contacts(conn: psycopg.Connection, *, contact_id: int | None = None) -> list[dict[str, Any]]:
    """Every contact (or one) with its party's name; secrets are not read."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("""
            SELECT c.id, CASE WHEN c.firm_id IS NOT NULL THEN 'firm' WHEN c.use_unit_id IS NOT NULL THEN 'use_unit'
                              ELSE 'district' END AS party,
                   COALESCE(c.firm_id, c.use_unit_id, c.district_id) AS party_id,
                   COALESCE(f.name, u.name, d.name) AS party_name, c.name, c.role, c.channel, c.address,
                   c.secret <> '' AS has_secret, c.duty_days, to_char(c.duty_start, 'HH24:MI') AS duty_start,
                   to_char(c.duty_end, 'HH24:MI') AS duty_end, c.min_severity, c.active
              FROM contacts c LEFT JOIN maintenance_firms f ON f.id = c.firm_id
              LEFT JOIN use_units u ON u.id = c.use_unit_id LEFT JOIN districts d ON d.id = c.district_id
             WHERE %(id)s::integer IS NULL OR c.id = %(id)s
             ORDER BY party_name, c.role, c.name, c.id""", {"id": contact_id}).fetchall()


def add_contact(conn: psycopg.Connection, actor: audit.Actor, contact: ContactInput) -> dict[str, Any]:
    """Add a contact (checked) and write it to the audit log in the same transaction."""
    check(contact)
    with conn.transaction():
        exists = conn.execute(f"SELECT 1 FROM {PARTY_TABLES[contact.party]} WHERE id = %s",
                              (contact.party_id,)).fetchone()
        if exists is None:
            raise ContactError(f"party_id: no {contact.party} with id {contact.party_id}")
        row = conn.execute(
            f"INSERT INTO contacts ({_party_column(contact.party)}, name, role, channel, address, secret, duty_days,"
            " duty_start, duty_end, min_severity, active) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
            " COALESCE(%s, '24:00'::time), %s, %s) RETURNING id",
            (contact.party_id, contact.name.strip(), contact.role, contact.channel, contact.address.strip(),
             contact.secret, list(contact.duty_days), contact.duty_start, contact.duty_end, contact.min_severity,
             contact.active)).fetchone()
        contact_id = row["id"] if isinstance(row, Mapping) else row[0]
        after = _public(conn, contact_id)
        audit.record(conn, actor, "contact.create", f"contact {contact_id}", None, after)
    assert after is not None
    return after


def set_active(conn: psycopg.Connection, actor: audit.Actor, contact_id: int, active: bool) -> dict[str, Any]:
    """Switch a contact on or off (it is kept: past messages name it)."""
    with conn.transaction():
        before = _public(conn, contact_id)
        if before is None:
            raise ContactError(f"no contact with id {contact_id}")
        conn.execute("UPDATE contacts SET active = %s WHERE id = %s", (active, contact_id))
        after = _public(conn, contact_id)
        audit.record(conn, actor, "contact.enable" if active else "contact.disable", f"contact {contact_id}",
                     before, after)
    assert after is not None
    return after
