"""The dispatcher (alerts/delivery.py) on the real database, delivering to real local receivers, on a controlled
clock: grouping, critical alerts at once, backoff, failure after the last try, SMS never resent after an ambiguous
answer, robots' rate limits, contacts on duty, and two replicas sending each notification once."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from alerts.channels.dingtalk import DingTalk
from alerts.channels.email import Email
from alerts.channels.sms import Sms
from alerts.channels.webhook import Webhook
from alerts.delivery import DeliverySettings, deliver
from alerts.receivers import SMS_PATH, HttpReceiver, SmtpReceiver
from alerts.store import AlertInput, raise_alerts
from semon.clock import session_options
from tests.conftest import register_equipment, wait_until

SECRET = "hook-secret"
T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 on a Wednesday in Shanghai
SETTINGS = DeliverySettings(base_url="https://semon.example.cn", backoff_s=15, max_attempts=3)


@pytest.fixture
def receiver():
    server = HttpReceiver(secret=SECRET).start()
    yield server
    server.stop()


def channels(receiver: HttpReceiver | None = None, smtp_port: int = 0) -> dict:
    return {"webhook": Webhook(3), "dingtalk": DingTalk(3),
            "sms": Sms(receiver.url(SMS_PATH) if receiver else "", SECRET, 3),
            "email": Email("127.0.0.1", smtp_port, "none", "", "", "semon@example.cn", "", 3)}


def firm_id(db, name: str = "Shenghui Elevator Service") -> int:
    return db.execute("SELECT id FROM maintenance_firms WHERE name = %s", (name,)).fetchone()["id"]


def add_contact(db, firm: int, channel: str, address: str, *, role: str = "duty", secret: str = SECRET,
                **columns) -> int:
    values = {"firm_id": firm, "name": f"{role} {channel}", "role": role, "channel": channel, "address": address,
              "secret": secret} | columns
    return db.execute(f"INSERT INTO contacts ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})"
                      " RETURNING id", list(values.values())).fetchone()["id"]


def only_firm_routes(db) -> None:
    db.execute("DELETE FROM alert_routes WHERE recipient <> 'firm'")


def raise_at(db, at: datetime, *alerts: tuple[int, str, str]) -> None:
    raise_alerts(db, "device", [AlertInput(e, kind, severity, f"{kind} 测试", at) for e, kind, severity in alerts],
                 at=at)


def statuses(db) -> dict[str, int]:
    return {r["status"]: r["n"] for r in db.execute(
        "SELECT status, count(*) AS n FROM notifications GROUP BY status")}


def test_alerts_that_are_not_critical_wait_and_go_out_together(db, receiver):
    only_firm_routes(db)
    ids = [register_equipment(db, f"EL-{n}", address=f"徐汇区 {n} 号") for n in range(3)]
    add_contact(db, firm_id(db), "webhook", receiver.url())
    raise_at(db, T0, *[(e, "door_close_failure", "medium") for e in ids])
    assert deliver(db, T0 + timedelta(seconds=29), SETTINGS, channels()).sent == 0
    assert deliver(db, T0 + timedelta(seconds=30), SETTINGS, channels()).sent == 1
    [message] = receiver.received
    assert [n["equipment_code"] for n in message.body["notifications"]] == ["EL-0", "EL-1", "EL-2"]
    assert message.body["notifications"][0]["url"].startswith("https://semon.example.cn/alerts/")
    assert message.body["notifications"][0]["at"] == "2026-12-02T10:00:00+08:00"
    assert statuses(db) == {"sent": 3}


def test_updates_to_a_contact_go_out_at_most_every_group_interval(db, receiver):
    only_firm_routes(db)
    first, second = register_equipment(db, "EL-1"), register_equipment(db, "EL-2")
    add_contact(db, firm_id(db), "webhook", receiver.url())
    raise_at(db, T0, (first, "door_close_failure", "medium"))
    deliver(db, T0 + timedelta(seconds=30), SETTINGS, channels())
    raise_at(db, T0 + timedelta(seconds=60), (second, "door_close_failure", "medium"))
    assert deliver(db, T0 + timedelta(seconds=329), SETTINGS, channels()).sent == 0
    assert deliver(db, T0 + timedelta(seconds=330), SETTINGS, channels()).sent == 1
    assert [len(m.body["notifications"]) for m in receiver.received] == [1, 1]


def test_critical_alerts_go_out_at_once_one_by_one(db, receiver):
    only_firm_routes(db)
    ids = [register_equipment(db, f"EL-{n}") for n in range(2)]
    add_contact(db, firm_id(db), "webhook", receiver.url())
    raise_at(db, T0, *[(e, "entrapment", "critical") for e in ids], (ids[0], "door_close_failure", "medium"))
    assert deliver(db, T0, SETTINGS, channels()).sent == 2
    assert sorted(m.body["notifications"][0]["kind"] for m in receiver.received) == ["entrapment", "entrapment"]
    assert sorted(m.body["subject"] for m in receiver.received) == [
        "【紧急 Critical】新告警 New alert: Passenger trapped (困人) · EL-0",
        "【紧急 Critical】新告警 New alert: Passenger trapped (困人) · EL-1"]


def test_a_receiver_that_is_down_gets_everything_once_when_it_comes_back(db, receiver):
    only_firm_routes(db)
    ids = [register_equipment(db, f"EL-{n}") for n in range(5)]
    add_contact(db, firm_id(db), "webhook", receiver.url())
    receiver.stop()
    raise_at(db, T0, *[(e, "entrapment", "critical") for e in ids])
    down = deliver(db, T0, SETTINGS, channels())
    assert (down.sent, down.retried) == (0, 5)
    assert deliver(db, T0 + timedelta(seconds=14), SETTINGS, channels()).retried == 0  # backing off: 15 s
    receiver.start()
    assert deliver(db, T0 + timedelta(seconds=15), SETTINGS, channels()).sent == 5
    assert deliver(db, T0 + timedelta(seconds=600), SETTINGS, channels()).sent == 0
    assert len(receiver.keys) == 5 and receiver.duplicates == 0
    assert sorted(n["alert_id"] for m in receiver.received for n in m.body["notifications"]) == [1, 2, 3, 4, 5]
    assert statuses(db) == {"sent": 5}


def test_a_sender_that_died_mid_send_is_replaced_and_the_receiver_dedupes(db, receiver):
    only_firm_routes(db)
    equipment = register_equipment(db, "EL-1")
    add_contact(db, firm_id(db), "webhook", receiver.url())
    raise_at(db, T0, (equipment, "entrapment", "critical"))
    receiver.fail_with = 504  # the receiver took it, but its answer was lost: semon cannot tell
    assert deliver(db, T0, SETTINGS, channels()).retried == 1
    receiver.fail_with = None
    deliver(db, T0 + timedelta(seconds=15), SETTINGS, channels())
    # A claim whose sender vanished lapses after the lease, and the message is sent again with the same key.
    db.execute("UPDATE delivery_messages SET status = 'sending', claimed_until = %s, claim = gen_random_uuid()",
               (T0 + timedelta(seconds=20),))
    assert deliver(db, T0 + timedelta(seconds=21), SETTINGS, channels()).sent == 1
    assert list(receiver.keys.values()) == [2] and len(receiver.received) == 1


def test_after_the_last_try_the_message_is_failed_and_visible(db):
    only_firm_routes(db)
    equipment = register_equipment(db, "EL-1")
    add_contact(db, firm_id(db), "webhook", "http://127.0.0.1:9/hook")
    raise_at(db, T0, (equipment, "entrapment", "critical"))
    at = T0
    for wait in (0, 15, 30):
        at += timedelta(seconds=wait)
        deliver(db, at, SETTINGS, channels())
    message = db.execute("SELECT status, attempts, last_error FROM delivery_messages").fetchone()
    assert (message["status"], message["attempts"]) == ("failed", 3)
    assert "127.0.0.1:9" in message["last_error"]
    assert db.execute("SELECT status FROM notifications").fetchone()["status"] == "failed"


def test_an_sms_after_an_ambiguous_answer_is_marked_unknown_and_never_resent(db, receiver):
    only_firm_routes(db)
    equipment = register_equipment(db, "EL-1")
    add_contact(db, firm_id(db), "sms", "13800000000", secret="")
    raise_at(db, T0, (equipment, "entrapment", "critical"))
    receiver.fail_with = 502
    assert deliver(db, T0, SETTINGS, channels(receiver)).unknown == 1
    receiver.fail_with = None
    assert deliver(db, T0 + timedelta(hours=1), SETTINGS, channels(receiver)).sent == 0
    assert receiver.received == []
    row = db.execute("SELECT status, last_error FROM delivery_messages").fetchone()
    assert row["status"] == "unknown" and "check before sending again" in row["last_error"]
    assert statuses(db) == {"unknown": 1}


def test_a_robot_gets_at_most_its_limit_a_minute_and_the_rest_combined(db, receiver):
    only_firm_routes(db)
    ids = [register_equipment(db, f"EL-{n:02d}") for n in range(25)]
    add_contact(db, firm_id(db), "dingtalk", receiver.dingtalk_url())
    raise_at(db, T0, *[(e, "entrapment", "critical") for e in ids])
    assert deliver(db, T0, SETTINGS, channels()).sent == 20
    assert receiver.rejected == []
    texts = [m.body["markdown"]["text"] for m in receiver.received]
    assert sum(text.count("设备 Equipment: EL-") for text in texts) == 25  # 19 alone, the last 6 in one message
    assert sorted(text.count("**【紧急") for text in texts) == [1] * 19 + [6]
    assert statuses(db) == {"sent": 25}


def test_a_robot_at_its_limit_keeps_the_next_alerts_and_combines_them_later(db, receiver):
    only_firm_routes(db)
    ids = [register_equipment(db, f"EL-{n:02d}") for n in range(23)]
    add_contact(db, firm_id(db), "dingtalk", receiver.dingtalk_url())
    raise_at(db, T0, *[(e, "entrapment", "critical") for e in ids[:20]])
    assert deliver(db, T0, SETTINGS, channels()).sent == 20
    raise_at(db, T0 + timedelta(seconds=10), *[(e, "entrapment", "critical") for e in ids[20:]])
    assert deliver(db, T0 + timedelta(seconds=10), SETTINGS, channels()).sent == 0
    assert deliver(db, T0 + timedelta(seconds=61), SETTINGS, channels()).sent == 3
    assert statuses(db) == {"sent": 23}


def test_the_role_asked_for_and_the_contacts_on_duty_are_told(db, receiver):
    only_firm_routes(db)
    register_equipment(db, "EL-1")
    firm = firm_id(db)
    add_contact(db, firm, "webhook", receiver.url() + "?who=day", duty_start="08:00", duty_end="18:00")
    add_contact(db, firm, "webhook", receiver.url() + "?who=night", duty_start="18:00", duty_end="08:00")
    add_contact(db, firm, "webhook", receiver.url() + "?who=supervisor", role="supervisor",
                duty_start="09:00", duty_end="17:00", duty_days=[1, 2, 3, 4, 5])
    raise_at(db, T0, (1, "entrapment", "critical"))  # 10:00 Wednesday, local
    deliver(db, T0, SETTINGS, channels())
    night = T0 + timedelta(hours=12)  # 22:00
    raise_at(db, night, (1, "overspeed", "critical"))
    db.execute("INSERT INTO notifications (alert_id, event, recipient, firm_id, contact_role, created_at,"
               " next_attempt_at) VALUES (2, 'escalated', 'firm', %s, 'supervisor', %s, %s)", (firm, night, night))
    deliver(db, night, SETTINGS, channels())
    told = db.execute("SELECT n.event, a.kind, d.address FROM deliveries d JOIN notifications n"
                      " ON n.id = d.notification_id JOIN alerts a ON a.id = n.alert_id ORDER BY d.id").fetchall()
    assert [(r["event"], r["kind"], r["address"].rpartition("=")[2]) for r in told] == [
        ("raised", "entrapment", "day"), ("raised", "entrapment", "supervisor"), ("raised", "overspeed", "night"),
        ("escalated", "overspeed", "supervisor")]  # off duty, but the only supervisor: told rather than nobody


def test_a_party_without_contacts_gets_its_registry_email_or_is_marked_failed(db):
    smtp = SmtpReceiver().start()
    try:
        register_equipment(db, "EL-1", use_unit="徐汇大厦")
        db.execute("UPDATE maintenance_firms SET email = 'duty@shenghui.example.cn'")
        raise_at(db, T0, (1, "entrapment", "critical"))
        deliver(db, T0, SETTINGS, channels(smtp_port=smtp.port))
        wait_until(lambda: smtp.messages, message="the e-mail")
        assert [m["To"] for m in smtp.messages] == ["duty@shenghui.example.cn"]
        rows = db.execute("SELECT recipient, status, last_error FROM notifications ORDER BY recipient").fetchall()
        assert [(r["recipient"], r["status"]) for r in rows] == [
            ("district", "failed"), ("firm", "sent"), ("use_unit", "failed")]
        assert rows[0]["last_error"].startswith("no contact")
    finally:
        smtp.stop()


def test_two_replicas_send_each_notification_once(db, db_url, base_config, receiver):
    only_firm_routes(db)
    ids = [register_equipment(db, f"EL-{n:03d}") for n in range(120)]
    add_contact(db, firm_id(db), "webhook", receiver.url())
    raise_at(db, T0, *[(e, "entrapment", "critical") for e in ids])
    settings = DeliverySettings(batch_size=20, expand_batch=30, workers=4, max_batches=1)
    totals: list[int] = []
    start = threading.Barrier(2)

    def replica() -> None:
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row,
                             options=session_options(base_config.time_zone)) as conn:
            start.wait()
            sent = 0
            for _ in range(20):
                sent += deliver(conn, T0, settings, channels()).sent
            totals.append(sent)

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(totals) == 120 and all(totals), totals
    assert len(receiver.keys) == 120 and receiver.duplicates == 0
    assert statuses(db) == {"sent": 120}


def test_an_mqtt_contact_gets_its_firms_alerts_on_the_broker_and_the_ingester_ignores_them(config, db, ingester):
    from alerts.channels import channels_from_config
    from alerts.delivery import settings_from_config
    from tests.mqtt_helpers import Subscriber

    only_firm_routes(db)
    equipment = register_equipment(db, "EL-1")
    firm = firm_id(db)
    add_contact(db, firm, "mqtt", "", secret="")
    listener = Subscriber(config.mqtt_url, topic="sem/v1/alerts/#")
    try:
        raise_at(db, T0, (equipment, "entrapment", "critical"))
        assert deliver(db, T0, settings_from_config(config), channels_from_config(config)).sent == 1
        wait_until(lambda: listener.raw, message="the alert on the broker")
        assert listener.raw[0].topic == f"sem/v1/alerts/{firm}"
        assert json.loads(listener.raw[0].payload)["notifications"][0]["kind"] == "entrapment"
        time.sleep(0.5)  # the ingester has had the message too; it must not have stored it anywhere
        assert db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 0
    finally:
        listener.close()


def test_a_message_says_what_where_when_and_links_to_the_alert_chinese_first():
    from alerts.messages import Item, render

    item = Item(7, "raised", 42, "EL-1", "徐汇区 漕溪北路 1 号", "entrapment", "Passenger trapped (困人)", "critical",
                T0, "car stopped between floors 3 and 4")
    reminder = Item(8, "reminder", None, "BO-2", "", "periodic_inspection", "定期检验 — 2026-12-20 到期 due", None,
                    T0, "")
    one = render([item], "Asia/Shanghai", "https://semon.example.cn/")
    assert one.subject == "【紧急 Critical】新告警 New alert: Passenger trapped (困人) · EL-1"
    assert one.text == (
        "【紧急 Critical】新告警 New alert: Passenger trapped (困人)\n"
        "设备 Equipment: EL-1 · 地址 Address: 徐汇区 漕溪北路 1 号\n"
        "时间 Time: 2026-12-02 10:00 UTC+8\n"
        "详情 Detail: car stopped between floors 3 and 4\n"
        "查看 View: https://semon.example.cn/alerts/42\n\n"
        "— semon 特种设备监测 Special equipment monitoring\n")
    both = render([item, reminder], "Asia/Shanghai", "https://semon.example.cn")
    assert both.subject == "2 条告警通知 alert notifications · BO-2, EL-1"
    assert "到期提醒 Due soon: 定期检验 — 2026-12-20 到期 due" in both.text
    assert "查看 View: https://semon.example.cn/equipment/BO-2" in both.text
    assert [n["notification_id"] for n in both.payload["notifications"]] == [7, 8]


def test_the_alerts_timeline_says_which_contact_each_notification_reached_and_how(db, client, receiver):
    only_firm_routes(db)
    eid = register_equipment(db, "EL-T")
    add_contact(db, firm_id(db), "webhook", receiver.url())
    add_contact(db, firm_id(db), "sms", receiver.url(SMS_PATH), role="supervisor", duty_days=[6, 7])  # off duty
    raise_at(db, T0, (eid, "entrapment", "critical"))
    alert_id = db.execute("SELECT id FROM alerts WHERE equipment_id = %s", (eid,)).fetchone()["id"]
    assert deliver(db, T0, SETTINGS, channels(receiver)).sent == 1
    [notification] = client.get(f"/api/alerts/{alert_id}").get_json()["notifications"]
    [reached] = notification["deliveries"]
    assert (reached["contact"], reached["role"], reached["channel"], reached["status"], reached["attempts"]) == \
        ("duty webhook", "duty", "webhook", "sent", 1)
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "→ duty webhook (duty) · webhook: sent, 1 attempt(s), sent 2026-12-02 10:00" in page
