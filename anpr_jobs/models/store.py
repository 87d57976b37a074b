"""The MLflow tracking store a job uses: where it is, whether it answers, that it exists."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from anpr_core.errors import ModelError


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def local_store_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, or None for any other store."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def check_reachable(uri: str, timeout_s: float = 3.0) -> None:
    """Nothing, if the tracking server of an http(s) URI accepts connections; else ModelError.

    MLflow itself retries a dead server with backoff for about two minutes; a job should say
    at once that the server is down.
    """
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
            return
    except OSError as exc:
        raise ModelError(
            f"cannot reach the MLflow tracking server {uri} ({exc.strerror or exc}): "
            "start it or fix MLFLOW_TRACKING_URI"
        ) from exc


def use_tracking(uri: str | None = None) -> str:
    """The tracking URI now in use (``uri``, else ``tracking_uri()``), set for tracking and
    registry alike."""
    import mlflow

    uri = uri or tracking_uri()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def mlflow_store() -> str:
    """The tracking URI MLflow uses now."""
    import mlflow

    return mlflow.get_tracking_uri()


def open_store(region: str, tracking: str | None = None) -> str:
    """The tracking URI in use, once it is known to hold a store; ModelError when a local
    store does not exist yet (reading never creates one) or a server cannot be reached."""
    store = use_tracking(tracking)
    db = local_store_path(store)
    if db is not None and not db.is_file():
        raise ModelError(
            f"no model store at {db}: run `anpr train DATA --region {region}` first, "
            "or set MLFLOW_TRACKING_URI"
        )
    return store
