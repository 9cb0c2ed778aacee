"""Each channel against a real local receiver: the webhook's signature and body, the SMTP server over STARTTLS,
the DingTalk and WeCom robot stand-ins' formats and signatures, SMS through the gateway adapter, MQTT on the real
broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alerts.channels import Message, SendError, Target
from alerts.channels.dingtalk import DingTalk
from alerts.channels.email import Email
from alerts.channels.mqtt import Mqtt
from alerts.channels.sms import Sms
from alerts.channels.webhook import Webhook
from alerts.channels.wecom import WeCom
from alerts.receivers import SMS_PATH, HttpReceiver, SmtpReceiver
from semon.tls import endpoint_from_url, make_local_ca
from tests.conftest import wait_until
from tests.mqtt_helpers import INGESTER, Subscriber

SECRET = "SEC-test-secret"
MESSAGE = Message("key-1", "【紧急 Critical】新告警 New alert: 困人 · EL-1", "困人 entrapment\n查看 View: http://x/alerts/1",
                  "**困人 entrapment**\n\n[查看 View](http://x/alerts/1)",
                  {"subject": "s", "notifications": [{"alert_id": 1}]})


@pytest.fixture
def receiver():
    server = HttpReceiver(secret=SECRET).start()
    yield server
    server.stop()


def now() -> datetime:
    return datetime.now(UTC)


def test_webhook_is_signed_and_carries_the_idempotency_key(receiver):
    Webhook(5).send(Target("webhook", receiver.url(), SECRET), MESSAGE, now())
    assert receiver.rejected == []
    [got] = receiver.received
    assert got.key == "key-1"
    assert got.body == {"idempotency_key": "key-1", "subject": "s", "notifications": [{"alert_id": 1}]}


def test_webhook_with_a_wrong_secret_is_refused_for_good(receiver):
    with pytest.raises(SendError) as refused:
        Webhook(5).send(Target("webhook", receiver.url(), "not-the-secret"), MESSAGE, now())
    assert refused.value.permanent and "HTTP 400" in str(refused.value)
    assert receiver.received == [] and receiver.rejected == ["bad signature"]


def test_a_receiver_that_is_down_is_a_retry_not_an_ambiguous_send(receiver):
    url = receiver.url()
    receiver.stop()
    with pytest.raises(SendError) as down:
        Webhook(2).send(Target("webhook", url, SECRET), MESSAGE, now())
    assert not down.value.permanent and not down.value.ambiguous


def test_a_5xx_is_ambiguous(receiver):
    receiver.fail_with = 503
    with pytest.raises(SendError) as trouble:
        Webhook(2).send(Target("webhook", receiver.url(), SECRET), MESSAGE, now())
    assert trouble.value.ambiguous and not trouble.value.permanent


def test_dingtalk_robot_gets_a_signed_url_and_markdown(receiver):
    DingTalk(5).send(Target("dingtalk", receiver.dingtalk_url(), SECRET), MESSAGE, now())
    assert receiver.rejected == []
    [got] = receiver.received
    assert got.body["msgtype"] == "markdown"
    assert got.body["markdown"] == {"title": MESSAGE.subject, "text": MESSAGE.markdown}


def test_dingtalk_robot_refuses_a_wrong_sign(receiver):
    with pytest.raises(SendError) as refused:
        DingTalk(5).send(Target("dingtalk", receiver.dingtalk_url(), "SEC-other"), MESSAGE, now())
    assert refused.value.permanent and "310000" in str(refused.value)


def test_dingtalk_too_fast_is_retried_later(receiver):
    receiver.robot_errcode = 130101
    with pytest.raises(SendError) as fast:
        DingTalk(5).send(Target("dingtalk", receiver.dingtalk_url(), SECRET), MESSAGE, now())
    assert not fast.value.permanent and "too fast" in str(fast.value)


def test_wecom_robot_gets_markdown_content(receiver):
    WeCom(5).send(Target("wecom", receiver.wecom_url()), MESSAGE, now())
    [got] = receiver.received
    assert got.body == {"msgtype": "markdown", "markdown": {"content": MESSAGE.markdown}}


def test_sms_goes_through_the_gateway_signed(receiver):
    Sms(receiver.url(SMS_PATH), SECRET, 5).send(Target("sms", "13800000000"), MESSAGE, now())
    [got] = receiver.received
    assert got.body == {"to": "13800000000", "text": MESSAGE.text, "idempotency_key": "key-1"}


def test_email_over_starttls_reaches_the_smtp_server(tmp_path):
    ca = make_local_ca(tmp_path / "ca")
    smtp = SmtpReceiver(tls_cert=ca.server_cert, tls_key=ca.server_key).start()
    try:
        channel = Email("127.0.0.1", smtp.port, "starttls", "", "", "semon@example.cn", str(ca.ca_cert), 5)
        channel.send(Target("email", "duty@firm.example.cn"), MESSAGE, now())
        wait_until(lambda: smtp.messages, message="the e-mail")
        [mail] = smtp.messages
        assert mail["Subject"] == MESSAGE.subject
        assert mail["To"] == "duty@firm.example.cn" and mail["Message-ID"] == "<key-1@semon>"
        assert mail.get_content().replace("\r\n", "\n") == MESSAGE.text + "\n"
    finally:
        smtp.stop()


def test_email_refuses_a_server_whose_certificate_it_cannot_trust(tmp_path):
    ca = make_local_ca(tmp_path / "ca")
    smtp = SmtpReceiver(tls_cert=ca.server_cert, tls_key=ca.server_key).start()
    try:
        channel = Email("127.0.0.1", smtp.port, "starttls", "", "", "semon@example.cn", "", 5)
        with pytest.raises(SendError, match="CERTIFICATE_VERIFY_FAILED"):
            channel.send(Target("email", "duty@firm.example.cn"), MESSAGE, now())
        assert smtp.messages == []
    finally:
        smtp.stop()


def test_mqtt_alert_is_published_on_the_firms_topic(broker):
    where = endpoint_from_url(broker.address, username=INGESTER[0], password=INGESTER[1])
    listener = Subscriber(broker.address, topic="sem/v1/alerts/#")
    try:
        Mqtt(where, 5).send(Target("mqtt", "7", party="7"), MESSAGE, now())
        wait_until(lambda: listener.raw, message="the MQTT alert")
        assert listener.raw[0].topic == "sem/v1/alerts/7" and listener.raw[0].qos == 1
        assert json.loads(listener.raw[0].payload)["idempotency_key"] == "key-1"
    finally:
        listener.close()
