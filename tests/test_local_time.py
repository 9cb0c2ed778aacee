"""The users' day is Asia/Shanghai's: at 00:30 there a check due the day before is overdue, on the scheduler's
scan and on every page, and every time is shown in their zone with its offset."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from models.compliance import rules_from_config, sync_rules
from models.scheduler import job_table, run_locked
from semon.clock import local_today
from semon.config import ConfigError, load_config
from tests.conftest import register_equipment
from web.db import FROZEN_NOW

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 00:30 on 2 December in Shanghai is still 1 December in UTC (16:30).
AT = datetime(2026, 12, 2, 0, 30, tzinfo=SHANGHAI)


def test_the_default_zone_is_shanghai_and_a_wrong_one_is_refused(base_config, monkeypatch):
    assert base_config.time_zone == "Asia/Shanghai"
    monkeypatch.setenv("SEMON_TIME_ZONE", "Asia/Beijing")  # no such IANA zone: China's is Asia/Shanghai
    with pytest.raises(ConfigError, match="Asia/Beijing.*not an IANA time zone"):
        load_config()


def test_local_today_is_the_users_date_not_utcs():
    assert local_today("Asia/Shanghai", AT.astimezone(UTC)) == date(2026, 12, 2)
    assert local_today("UTC", AT.astimezone(UTC)) == date(2026, 12, 1)


@pytest.fixture
def due_yesterday(db) -> int:
    """An elevator whose periodic inspection fell due on 1 December (inspected 1 December 2025), seen online."""
    sync_rules(db, rules_from_config())
    eid = register_equipment(db, "EL-TZ", install_date="2015-06-01")
    db.execute("INSERT INTO inspections (equipment_id, kind, performed_on) VALUES (%s, 'periodic_inspection',"
               " '2025-12-01')", (eid,))
    db.execute("INSERT INTO equipment_state (equipment_id, status, status_changed_at, last_seen)"
               " VALUES (%s, 'online', %s, %s)", (eid, AT, AT))
    return eid


def test_at_half_past_midnight_in_shanghai_the_scan_finds_yesterdays_due_date_overdue(config, db, due_yesterday):
    job, _ = job_table(config)["compliance"]
    run_locked(config, "compliance", job, AT.astimezone(UTC))
    alert = db.execute("SELECT detail, message FROM alerts WHERE kind = 'overdue:periodic_inspection'").fetchone()
    assert alert is not None, "judged on the UTC date (1 December), nothing would be overdue yet"
    assert alert["detail"]["due"] == "2026-12-01"


def test_at_half_past_midnight_in_shanghai_the_pages_and_api_say_overdue_in_local_time(app, client, db,
                                                                                      due_yesterday):
    app.config[FROZEN_NOW] = AT
    item = client.get("/api/equipment/EL-TZ").get_json()
    assert (item["inspection_status"], item["next_inspection_due"]) == ("overdue", "2026-12-01")
    # Times in the API carry the users' offset.
    assert item["last_seen"] == "2026-12-02T00:30:00+08:00"
    due = client.get("/api/compliance/due").get_json()
    assert due["as_of"] == "2026-12-02"
    [row] = [r for r in due["items"] if r["check"] == "periodic_inspection"]
    assert (row["status"], row["days_overdue"]) == ("overdue", 1)
    page = client.get("/equipment/EL-TZ").get_data(as_text=True)
    assert "2026-12-02 00:30 UTC+8" in page
    assert not re.search(r"2026-12-01 16:30", page), "a time shown in UTC"
    listing = client.get("/equipment").get_data(as_text=True)
    assert "超期未检" in listing
