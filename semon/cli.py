"""The `semon` command: one entry point with a subcommand per process or task."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

import click

from alerts import store as alert_store
from semon.check_monitor import check_monitor_cmd
from semon.config import SETTINGS_BY_NAME, Config, ConfigError, load_config
from semon.db import DatabaseUnavailable, create_database, database_name, redact
from semon.dead_letters import dead_letters
from semon.monitors_cli import monitors
from semon.schemas import schemas
from semon.users_cli import cli_actor, users


def _setup_logging(config: Config) -> None:
    logging.basicConfig(level=config.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class _Context:
    """Loads the config lazily so that `semon --help` works without a valid one."""

    def __init__(self, path: str | None):
        self.path = path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.path)
            _setup_logging(self._config)
            alert_store.configure(self._config)  # every process that raises alerts starts here
        return self._config


pass_ctx = click.make_pass_decorator(_Context)


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="config file (default: config.yaml of the repository, or SEMON_CONFIG)")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """semon: monitoring for elevators, escalators, boilers and pressure vessels."""
    ctx.obj = _Context(config_path)


@cli.command("config")
@click.argument("name", required=False)
@pass_ctx
def show_config(ctx: _Context, name: str | None) -> None:
    """Print one setting's value, or every setting."""
    if name is not None:
        if name not in SETTINGS_BY_NAME:
            raise click.ClickException(f"unknown setting {name!r}")
        click.echo(ctx.config[name])
        return
    for key, value in ctx.config.items():
        if key in ("database_url", "mqtt_url"):
            value = redact(value)
        elif SETTINGS_BY_NAME[key].secret and value:
            value = "***"
        click.echo(f"{key}: {value}")


@cli.command("create-database")
@pass_ctx
def create_database_cmd(ctx: _Context) -> None:
    """Create the configured database on its server if it does not exist."""
    url = ctx.config.database_url
    create_database(url, database_name(url))
    click.echo(f"database {database_name(url)} is ready")


@cli.command()
@pass_ctx
def migrate(ctx: _Context) -> None:
    """Apply the schema migrations not yet applied."""
    from semon.migrate import migrate as run_migrations

    applied = run_migrations(ctx.config.database_url)
    click.echo(f"applied {len(applied)} migration(s)" if applied else "schema is up to date")


@cli.command()
@pass_ctx
def ingest(ctx: _Context) -> None:
    """Subscribe to sem/v1/# and store telemetry, events and status in TimescaleDB."""
    from ingest.service import run_ingester
    from semon.migrate import migrate as run_migrations

    run_migrations(ctx.config.database_url)
    run_ingester(ctx.config)


@cli.command()
@pass_ctx
def scheduler(ctx: _Context) -> None:
    """Run the periodic jobs: fault alerts from events, overdue inspections."""
    from models.scheduler import run_scheduler
    from semon.migrate import migrate as run_migrations

    run_migrations(ctx.config.database_url)
    run_scheduler(ctx.config)


@cli.command()
@click.option("--host", default=None, help="address to listen on (default: web_host)")
@click.option("--port", type=int, default=None, help="port to listen on (default: web_port)")
@pass_ctx
def web(ctx: _Context, host: str | None, port: int | None) -> None:
    """Serve the web UI and JSON API."""
    from web import serve

    serve(ctx.config, host=host, port=port)


# A misspelt district must not become a new one unasked (docs/registry-csv.md).
_create_districts = click.option("--create-districts", is_flag=True,
                                 help="register the districts the equipment file names that are not registered yet")


@cli.command("import-equipment")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_create_districts
@pass_ctx
def import_equipment(ctx: _Context, csv_file: Path, create_districts: bool) -> None:
    """Import the equipment registry from CSV (all rows or none; re-importing changes nothing)."""
    _registry_import(ctx, "equipment", csv_file, create_districts)


@cli.command("import-records")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def import_records(ctx: _Context, csv_file: Path) -> None:
    """Import inspection and maintenance records from CSV, after their equipment (all rows or none; re-importing
    changes nothing)."""
    _registry_import(ctx, "records", csv_file)


# What `semon registry import|export` handles; records import after their equipment (docs/registry-csv.md).
REGISTRY_KINDS = ("equipment", "records", "firms", "districts", "use-units")


@cli.group()
def registry() -> None:
    """Import or export the registry as CSV: equipment, records, firms, districts, use-units."""


@registry.command("import")
@click.argument("kind", type=click.Choice(REGISTRY_KINDS))
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_create_districts
@pass_ctx
def registry_import(ctx: _Context, kind: str, csv_file: Path, create_districts: bool) -> None:
    """Import KIND from CSV_FILE (all rows or none; re-importing changes nothing)."""
    if create_districts and kind != "equipment":
        raise click.UsageError("--create-districts applies only to the equipment file")
    _registry_import(ctx, kind, csv_file, create_districts)


def _registry_import(ctx: _Context, kind: str, csv_file: Path, create_districts: bool = False) -> None:
    """Import one registry CSV; each problem goes to stderr as FILE:line N: ..., then how many problems in how many
    rows, and the exit status is 1."""
    from semon.migrate import migrate as run_migrations
    from semon.registry.csvfiles import RegistryError
    from semon.registry.fields import ENTITIES
    from semon.registry.importer import import_entity_csv, import_records_csv, import_registry_csv

    run_migrations(ctx.config.database_url)
    actor = cli_actor()
    try:
        if kind == "equipment":
            summary = import_registry_csv(ctx.config, csv_file, create_districts=create_districts, actor=actor)
        elif kind == "records":
            summary = import_records_csv(ctx.config, csv_file, actor=actor)
        else:
            summary = import_entity_csv(ctx.config, ENTITIES[kind.replace("-", "_")], csv_file, actor=actor)
    except RegistryError as exc:
        for problem in exc.problems:
            click.echo(f"{csv_file}:{problem}", err=True)
        raise click.ClickException(f"{exc}; nothing was imported") from None
    click.echo(summary)


@registry.command("export")
@click.argument("kind", type=click.Choice(REGISTRY_KINDS))
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@pass_ctx
def registry_export(ctx: _Context, kind: str, csv_file: Path | None) -> None:
    """Write KIND as CSV in its import format to CSV_FILE, or to standard output."""
    from semon.migrate import migrate as run_migrations
    from semon.registry.exporter import export_csv

    run_migrations(ctx.config.database_url)
    if csv_file is None:
        export_csv(ctx.config, kind.replace("-", "_"), sys.stdout)
        return
    # write_csv starts with the BOM Excel needs; the file's encoding must not add a second one.
    with csv_file.open("w", encoding="utf-8", newline="") as out:
        count = export_csv(ctx.config, kind.replace("-", "_"), out)
    click.echo(f"wrote {count} {kind} row(s) to {csv_file}", err=True)


@cli.command()
@click.option("--scenario", default="demo", show_default=True, help="fleet scenario name or YAML file")
@click.option("--registry-csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the fleet's registry CSV here and exit")
@click.option("--seed", type=int, default=None, help="random seed (default: simulate_seed)")
@click.option("--interval", type=float, default=None, help="seconds between messages per monitor")
@click.option("--duration", type=float, default=None, help="stop after this many (wall-clock) seconds")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="accelerated time: simulated seconds per wall-clock second (60: an hour a minute)")
@click.option("--from", "history", default=None, metavar="AGE",
              help="backfill: start the simulation this long ago (30d, 12h, 90m, 45s), publish that history "
                   "as fast as the broker takes it, then carry on in real time")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="publishing processes, one MQTT connection each (default: enough for the fleet's rate)")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="at the end, write the injected faults and wear episodes here (JSON lines)")
@click.option("--malformed", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="share of messages sent malformed, for the dead-letter path")
@click.option("--report-every", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="seconds between log lines with the publish rate and backlog")
@click.option("--clock-start", "clock_start", default=None, metavar="AGE|TIME",
              help="start the monitors' clock this long ago (3d, 12h) or at this RFC 3339 time, but publish on the "
                   "--speed schedule, not as a backfill")
@click.option("--reporting-share", type=click.FloatRange(0, 1), default=None,
              help="share of monitors that report their own faults, instead of the scenario's (0: every monitor "
                   "sends telemetry only)")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, metavar="YYYY-MM-DD",
              help="the day the fleet's ages and records count back from (default: today): the same seed and day "
                   "make the same fleet")
@pass_ctx
def simulate(ctx: _Context, scenario: str, registry_csv: Path | None, seed: int | None,
             interval: float | None, duration: float | None, speed: float, history: str | None,
             processes: int | None, labels_path: Path | None, malformed: float, report_every: float,
             clock_start: str | None, reporting_share: float | None, today: datetime | None) -> None:
    """Simulate a fleet of monitors publishing over MQTT, or write its registry CSV (docs/simulate.md)."""
    from simulators.run import (
        SimulationError,
        parse_clock_start,
        parse_history,
        run_simulation,
        write_scenario_registry,
    )

    seed = ctx.config.simulate_seed if seed is None else seed
    if registry_csv is not None:
        count = write_scenario_registry(scenario, seed, registry_csv, today.date() if today else None)
        click.echo(f"wrote {count} equipment to {registry_csv}")
        return
    try:
        history_s = 0.0 if history is None else parse_history(history)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from None
    try:
        clock_start_s, clock_epoch = (0.0, None) if clock_start is None else parse_clock_start(clock_start)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--clock-start") from None
    try:
        run_simulation(ctx.config, scenario, seed=seed, interval_s=interval or ctx.config.simulate_interval_s,
                       duration_s=duration, speed=speed, history_s=history_s, processes=processes,
                       labels_path=labels_path, malformed_share=malformed, report_every_s=report_every,
                       clock_start_s=clock_start_s, clock_epoch=clock_epoch, reporting_share=reporting_share,
                       today=today.date() if today else None)
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@pass_ctx
def demo(ctx: _Context) -> None:
    """Migrate, import the demo fleet, then run ingester, scheduler, web UI and simulator until Ctrl-C."""
    from semon.demo import run_demo

    run_demo(ctx.config, ctx.path)


@cli.command()
@click.option("--webhook-port", type=int, default=8025, show_default=True, help="the webhook receiver's port")
@click.option("--smtp-port", type=int, default=8026, show_default=True, help="the SMTP server's port")
@click.option("--secret", default="", help="check webhook signatures with this secret")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("var/received"), show_default=True,
              help="where what arrives is written: webhook.jsonl and mail/*.eml")
def receivers(webhook_port: int, smtp_port: int, secret: str, directory: Path) -> None:
    """Run a local webhook receiver and SMTP server that keep every alert message sent to them (docs/delivery.md)."""
    from alerts.receivers import run_receivers

    run_receivers(webhook_port, smtp_port, secret, directory)


cli.add_command(dead_letters)  # semon/dead_letters.py
cli.add_command(schemas)  # semon/schemas.py
cli.add_command(check_monitor_cmd)  # semon/check_monitor.py
cli.add_command(monitors)  # semon/monitors_cli.py
cli.add_command(users)  # semon/users_cli.py


def main() -> None:
    """Entry point: turns expected failures into one readable line and a non-zero exit."""
    try:
        cli(standalone_mode=True)
    except (ConfigError, DatabaseUnavailable) as exc:
        click.echo(f"semon: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
