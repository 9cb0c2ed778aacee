"""`semon monitors`: MQTT accounts for monitors and for semon's own processes, and a local CA (docs/monitors.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from semon.monitors import (
    SERVICE_ROLES,
    AccountError,
    Issued,
    broker_dir,
    change_accounts,
    list_accounts,
    provision,
    provision_all,
    revoke,
    rotate,
    set_service_account,
)


def _config(ctx: click.Context):
    # semon.cli's context object loads the settings lazily (and sets up logging).
    return ctx.find_root().obj.config


def _change(ctx: click.Context, action: Callable[[Any], Any]) -> Any:
    from semon.migrate import migrate

    config = _config(ctx)
    migrate(config.database_url)
    try:
        result, reloaded = change_accounts(config, action)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    directory = broker_dir(config)
    click.echo(f"broker reloaded ({directory})" if reloaded else
               f"no Mosquitto runs from {directory}: it reads the accounts when it starts", err=True)
    return result


def _show_passwords(issued: list[Issued]) -> None:
    if not issued:
        click.echo("nothing to provision: every registered equipment has an account", err=True)
        return
    click.echo("username\tpassword", err=True)
    for item in issued:
        click.echo(f"{item.username}\t{item.password}")
    click.echo(f"{len(issued)} password(s), shown this once: semon keeps only their hashes", err=True)


@click.group("monitors")
def monitors() -> None:
    """MQTT accounts: one per monitor, publishing only under its own equipment's topics."""


@monitors.command("provision")
@click.argument("codes", nargs=-1)
@click.option("--all", "every", is_flag=True, help="every registered equipment (not scrapped) that has no account yet")
@click.pass_context
def provision_cmd(ctx: click.Context, codes: tuple[str, ...], every: bool) -> None:
    """Create the accounts of the monitors of these equipment CODES and print each password once."""
    if every == bool(codes):
        raise click.UsageError("give equipment codes or --all, not both or neither")
    _show_passwords(_change(ctx, provision_all if every else lambda conn: provision(conn, codes)))


@monitors.command("rotate")
@click.argument("usernames", nargs=-1, required=True)
@click.pass_context
def rotate_cmd(ctx: click.Context, usernames: tuple[str, ...]) -> None:
    """Give these accounts new passwords (printed once); the old ones are refused and their connections closed."""
    _show_passwords(_change(ctx, lambda conn: rotate(conn, usernames)))


@monitors.command("revoke")
@click.argument("usernames", nargs=-1, required=True)
@click.pass_context
def revoke_cmd(ctx: click.Context, usernames: tuple[str, ...]) -> None:
    """Revoke these accounts (a monitor's username is its equipment code); connected clients are disconnected."""
    revoked = _change(ctx, lambda conn: revoke(conn, usernames))
    click.echo(f"revoked: {', '.join(revoked)}")


@monitors.command("service")
@click.argument("role", type=click.Choice(SERVICE_ROLES))
@click.argument("username")
@click.pass_context
def service_cmd(ctx: click.Context, role: str, username: str) -> None:
    """Create the account USERNAME of an ingester or a simulator, or give it a new password; prints the password
    alone, for SEMON_MQTT_PASSWORD or SEMON_SIMULATE_MQTT_PASSWORD."""
    issued = _change(ctx, lambda conn: set_service_account(conn, role, username))
    click.echo(issued.password)


@monitors.command("sync")
@click.pass_context
def sync_cmd(ctx: click.Context) -> None:
    """Write the broker's password file and ACL again from semon's accounts, and reload the broker."""
    _change(ctx, lambda conn: None)
    click.echo(f"wrote the broker's accounts to {broker_dir(_config(ctx))}")


@monitors.command("list")
@click.pass_context
def list_cmd(ctx: click.Context) -> None:
    """Every account: username, role, equipment, when its password was set, when it was revoked."""
    from semon.db import connect
    from semon.migrate import migrate

    config = _config(ctx)
    migrate(config.database_url)
    # Dates in the users' time zone, as everywhere in semon.
    with connect(config.database_url, time_zone=config.time_zone) as conn:
        rows = list_accounts(conn)
    click.echo("username\trole\tequipment\tpassword set\trevoked")
    for row in rows:
        equipment = f"{row['type']} {row['code']}" if row["code"] else "-"
        click.echo(f"{row['username']}\t{row['role']}\t{equipment}\t{row['password_set_at']:%Y-%m-%d %H:%M}\t"
                   + (f"{row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "-"))


@monitors.command("tls-init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", "hosts", multiple=True, help="a name or address the broker is reached by (repeatable; "
                                                     "default: localhost and 127.0.0.1)")
def tls_init_cmd(directory: Path, hosts: tuple[str, ...]) -> None:
    """Make a local CA and a broker and a client certificate in DIRECTORY, for trying TLS (not for production)."""
    from semon.config import ConfigError
    from semon.tls import make_local_ca

    try:
        ca = make_local_ca(directory, hosts or ("localhost", "127.0.0.1"))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"""wrote {ca.ca_cert}, {ca.server_cert} and {ca.client_cert} with their keys. To use them:
  SEMON_MQTT_URL=mqtts://127.0.0.1:8883
  SEMON_MQTT_TLS_CA_FILE={ca.ca_cert}
  SEMON_MOSQUITTO_TLS_CERT_FILE={ca.server_cert}
  SEMON_MOSQUITTO_TLS_KEY_FILE={ca.server_key}""")
