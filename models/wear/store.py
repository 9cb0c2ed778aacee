"""The versioned model store, table wear_models (docs/wear.md): save a fitted model, and load the one in use.

A new version becomes active only once its file has been read back as this code reads it; a stored model that is
refused when loaded (unreadable, untrusted types, another feature list) is skipped with one line in the log, and
the newest earlier version that loads is used in its place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from models.wear.model import ModelRefused, WearModel, dumps, library_versions, loads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredModel:
    """A model as loaded from wear_models."""

    id: int
    version: int
    model: WearModel


def save_model(conn: psycopg.Connection, model: WearModel, *, train_from: date, train_to: date, width_s: int,
               validation: Mapping[str, Any], settings: Mapping[str, Any]) -> StoredModel:
    """Store a fitted model as the type's next version and make it the active one; raises ModelRefused (and
    changes nothing) if its file does not read back as this code's model."""
    blob = dumps(model)
    where = f"new {model.equipment_type} model"
    loads(blob, model.equipment_type, where)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('wear_models:' || %s))", (model.equipment_type,))
        row = conn.execute("""
            INSERT INTO wear_models (equipment_type, version, train_from, train_to, width_s, detector, equipment_count,
                                     sample_count, features, library_versions, settings, validation, model)
            SELECT %(type)s, COALESCE(max(version), 0) + 1, %(from)s, %(to)s, %(width_s)s, %(detector)s, %(count)s,
                   %(samples)s, %(features)s, %(versions)s, %(settings)s, %(validation)s, %(model)s
              FROM wear_models WHERE equipment_type = %(type)s
            RETURNING id, version""", {
            "type": model.equipment_type, "from": train_from, "to": train_to, "width_s": width_s,
            "detector": model.detector, "count": int(model.info.get("equipment_count", 0)),
            "samples": int(model.info.get("samples", 0)), "features": list(model.features),
            "versions": Jsonb(library_versions()), "settings": Jsonb({**settings, **model.info}),
            "validation": Jsonb(dict(validation)), "model": blob}).fetchone()
        model_id, version = _row(row)
        # Two statements: the partial unique index allows one active row per type at every moment.
        conn.execute("UPDATE wear_models SET active = false WHERE equipment_type = %s AND active",
                     (model.equipment_type,))
        conn.execute("UPDATE wear_models SET active = true WHERE id = %s", (model_id,))
    return StoredModel(model_id, version, model)


def _row(row: Any) -> tuple:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


class ModelCache:
    """The models in use, read from wear_models once per version; refusals are logged once per version."""

    def __init__(self) -> None:
        self._loaded: dict[int, StoredModel] = {}
        self._refused: dict[int, str] = {}

    def active(self, conn: psycopg.Connection, equipment_type: str) -> StoredModel | None:
        """The active model of a type or, if it is refused, the newest earlier version that loads; None if none."""
        rows = conn.execute("""
            SELECT id, version FROM wear_models
             WHERE equipment_type = %(type)s
               AND version <= (SELECT version FROM wear_models WHERE equipment_type = %(type)s AND active)
             ORDER BY version DESC""", {"type": equipment_type}).fetchall()
        for model_id, version in map(_row, rows):
            if model_id in self._loaded:
                return self._loaded[model_id]
            if model_id in self._refused:
                continue
            blob = _row(conn.execute("SELECT model FROM wear_models WHERE id = %s", (model_id,)).fetchone())[0]
            try:
                model = loads(bytes(blob), equipment_type, f"wear_models id {model_id} ({equipment_type} "
                                                           f"version {version})")
            except ModelRefused as exc:
                self._refused[model_id] = str(exc)
                log.warning("%s; using the previous version", exc)
                continue
            self._loaded[model_id] = StoredModel(model_id, version, model)
            return self._loaded[model_id]
        return None

    def refusals(self) -> dict[int, str]:
        """Why each refused model id was refused."""
        return dict(self._refused)
