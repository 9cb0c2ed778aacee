"""`semon users ...`: add, list, disable and enable users, reset a password, sign a user out everywhere, and make,
list and revoke API tokens from the command line (docs/access.md). Changes are in the audit log as made by
cli:<the shell's user>."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from semon import users as accounts
from semon.audit import Actor
from semon.db import connect


@contextmanager
def _connection(obj: Any) -> Iterator[psycopg.Connection]:
    from semon.migrate import migrate

    config = obj.config
    migrate(config.database_url)
    with connect(config.database_url, autocommit=True, time_zone=config.time_zone) as conn:
        try:
            yield conn
        except accounts.UserError as exc:
            raise click.ClickException(str(exc)) from None


def cli_actor() -> Actor:
    """Who makes a change from the command line, for the audit log: cli:<the shell's user>."""
    return Actor(None, f"cli:{getpass.getuser()}")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password (密码)", hide_input=True, confirmation_prompt=True)


_stdin = click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")


@click.group("users")
def users() -> None:
    """Users of the web app and their API tokens."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(accounts.ROLES), required=True)
@click.option("--name", "display_name", default="", help="the user's name as the pages show it")
@click.option("--firm", default=None, help="the maintenance firm of a firm's user")
@click.option("--use-unit", default=None, help="the use unit of a use unit's user")
@click.option("--district", "districts", multiple=True, help="a district an inspector sees (repeat for more)")
@click.option("--all-districts", is_flag=True, help="an inspector of every district")
@_stdin
@click.pass_obj
def add(obj: Any, username: str, role: str, display_name: str, firm: str | None, use_unit: str | None,
        districts: tuple[str, ...], all_districts: bool, password_stdin: bool) -> None:
    """Add a user (the password is asked for, or read from stdin)."""
    password = _password(password_stdin)
    with _connection(obj) as conn:
        user = accounts.create_user(conn, cli_actor(), username, role, password, display_name=display_name, firm=firm,
                                    use_unit=use_unit, districts=districts, all_districts=all_districts)
    click.echo(f"added {user.username} ({user.role}: {user.parties})")


@users.command("list")
@click.pass_obj
def list_(obj: Any) -> None:
    """Every user: name, role, whose equipment it sees, and whether it is disabled."""
    with _connection(obj) as conn:
        for user in accounts.list_users(conn):
            state = "disabled" if user.disabled else "active"
            click.echo(f"{user.username}\t{user.role}\t{user.parties}\t{state}\t{user.display_name}")


@users.command("disable")
@click.argument("username")
@click.pass_obj
def disable(obj: Any, username: str) -> None:
    """Disable a user: its sessions and API tokens stop working at once."""
    with _connection(obj) as conn:
        accounts.set_disabled(conn, cli_actor(), username, True)
    click.echo(f"disabled {username}")


@users.command("enable")
@click.argument("username")
@click.pass_obj
def enable(obj: Any, username: str) -> None:
    """Enable a disabled user again."""
    with _connection(obj) as conn:
        accounts.set_disabled(conn, cli_actor(), username, False)
    click.echo(f"enabled {username}")


@users.command("reset-password")
@click.argument("username")
@_stdin
@click.pass_obj
def reset_password(obj: Any, username: str, password_stdin: bool) -> None:
    """Set a new password; the user's sessions end."""
    password = _password(password_stdin)
    with _connection(obj) as conn:
        accounts.reset_password(conn, cli_actor(), username, password)
    click.echo(f"password of {username} reset; its sessions have ended")


@users.command("logout-everywhere")
@click.argument("username")
@click.pass_obj
def logout_everywhere(obj: Any, username: str) -> None:
    """End every session of a user."""
    with _connection(obj) as conn:
        accounts.end_sessions(conn, cli_actor(), username)
    click.echo(f"every session of {username} has ended")


@users.command("token-create")
@click.argument("username")
@click.argument("name")
@click.pass_obj
def token_create(obj: Any, username: str, name: str) -> None:
    """Make an API token for a user and print it: it is shown this once."""
    with _connection(obj) as conn:
        made, token = accounts.create_token(conn, cli_actor(), username, name)
    click.echo(f"token {made.id} ({made.name}) of {username}; shown once, keep it:", err=True)
    click.echo(token)


@users.command("tokens")
@click.argument("username", required=False)
@click.pass_obj
def tokens(obj: Any, username: str | None) -> None:
    """List API tokens (never the tokens themselves), of one user or of all."""
    with _connection(obj) as conn:
        for token in accounts.list_tokens(conn, username):
            state = f"revoked {token.revoked_at.isoformat()}" if token.revoked_at else "active"
            click.echo(f"{token.id}\t{token.username}\t{token.name}\t{state}")


@users.command("token-revoke")
@click.argument("token_id", type=int)
@click.pass_obj
def token_revoke(obj: Any, token_id: int) -> None:
    """Revoke an API token; it stops working at once."""
    with _connection(obj) as conn:
        revoked = accounts.revoke_token(conn, cli_actor(), token_id)
    click.echo(f"revoked token {token_id} ({revoked.name}) of {revoked.username}")
