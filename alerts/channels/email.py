"""E-mail over SMTP, with STARTTLS or implicit TLS (smtp_* settings); the message's idempotency key is its
Message-ID, so a mail system that sees a retry can tell it from a new alert."""

from __future__ import annotations

import smtplib
import socket
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from alerts.channels import IDEMPOTENCY_HEADER, Message, SendError, Target
from semon.config import Config


class Email:
    """Alert e-mails through the configured SMTP server."""

    name = "email"
    idempotent = True  # a repeat carries the same Message-ID

    def __init__(self, host: str, port: int, security: str, username: str, password: str, sender: str,
                 ca_file: str, timeout_s: float):
        self.host, self.port, self.security = host, port, security
        self.username, self.password, self.sender = username, password, sender
        self.ca_file = ca_file
        self.timeout_s = timeout_s

    @classmethod
    def from_config(cls, config: Config) -> Email:
        """The channel the smtp_* settings describe."""
        return cls(config.smtp_host, config.smtp_port, config.smtp_security, config.smtp_username,
                   config.smtp_password, config.smtp_from, config.smtp_tls_ca_file, config.delivery_timeout_s)

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file or None)

    def compose(self, target: Target, message: Message, now: datetime) -> EmailMessage:
        """The e-mail: plain text, Chinese first, with the idempotency key as Message-ID."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = target.address
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(now)
        mail["Message-ID"] = f"<{message.idempotency_key}@semon>"
        mail[IDEMPOTENCY_HEADER] = message.idempotency_key
        mail.set_content(message.text)
        return mail

    def send(self, target: Target, message: Message, now: datetime) -> None:
        """Hand the e-mail to the SMTP server."""
        if not self.host:
            raise SendError("no SMTP server: set smtp_host (docs/delivery.md)")
        mail = self.compose(target, message, now)
        where = f"SMTP {self.host}:{self.port}"
        try:
            if self.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                                      context=self._context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=self._context())
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"{where} refused {target.address}: {exc.recipients}", permanent=True) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise SendError(f"{where} refused the login of {self.username}: {exc.smtp_code}") from None
        except smtplib.SMTPResponseException as exc:
            raise SendError(f"{where} answered {exc.smtp_code} {exc.smtp_error!r}",
                            permanent=500 <= exc.smtp_code < 600) from None
        except (ConnectionRefusedError, socket.gaierror) as exc:
            raise SendError(f"{where}: {exc}") from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise SendError(f"{where}: {exc or type(exc).__name__}", ambiguous=True) from None
