"""The MLflow tracking store: where it is, whether it answers, the experiment, the UI.

Everything goes through ``MlflowClient`` with explicit ids rather than MLflow's global "active
run", so jobs sharing one process (Hydra's basic launcher) cannot leak state into each other.
``mlflow_run`` logs one job, ``sweep`` coordinates a sweep's parent run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import ssl
import urllib.error
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import filelock

from al_experiments.tracking import credentials, server_wait

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# MLflow's UI opens an experiment on its GenAI overview unless the experiment says it holds
# model training; this tag (the UI's "experiment type") makes it open on the runs.
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


class TrackingUnavailable(RuntimeError):
    """The tracking store cannot be used; the message is one sentence with the fix."""


class TrackingRefused(TrackingUnavailable):
    """The server answered and refuses this client as configured (its certificate not trusted,
    no or wrong credentials, no permission): waiting for it would not help."""


def refusal(exc: BaseException, uri: str, experiment: str | None = None) -> TrackingRefused | None:
    """The one-sentence ``TrackingRefused`` for an MLflow error that is the server's refusal
    (HTTP 401 or 403), else None."""
    from mlflow.exceptions import MlflowException  # slow to import: loaded on use
    from mlflow.utils.credentials import read_mlflow_creds

    if not isinstance(exc, MlflowException) or exc.get_http_status_code() not in (401, 403):
        return None
    user = read_mlflow_creds().username
    if exc.get_http_status_code() == 401:
        said = f"the password of user {user!r}" if user else "a request without credentials"
        return TrackingRefused(f"The MLflow tracking server at {uri} refused {said} (HTTP 401); "
                               f"{credentials.SIGN_IN} (scripts/tracking_server.sh add-user makes such a file).")
    what = f"experiment {experiment!r}" if experiment else "this request"
    user = user or "?"
    return TrackingRefused(
        f"User {user!r} has no permission on {what} at {uri} (HTTP 403); ask the server's admin for "
        f"it (scripts/tracking_server.sh grant {user} {experiment or 'EXPERIMENT'}) or choose another "
        "mlflow.experiment_name."
    )


# ----------------------------------------------------------------------------- the store
def resolve_tracking_uri(configured: str | None, setting: str = "mlflow.tracking_uri") -> str:
    """Config value, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the cwd.

    Relative SQLite paths are made absolute now, so every job of a sweep (and the process
    closing the parent run) addresses the same file whatever its working directory. A URI that
    carries a credential is refused (``TrackingUnavailable``): it would be logged with the run.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    try:
        credentials.refuse_credentials(uri, setting if configured else "MLFLOW_TRACKING_URI")
    except credentials.CredentialInUri as exc:
        raise TrackingUnavailable(str(exc)) from None
    db = sqlite_path(uri)
    if db is not None and not os.path.isabs(db):
        uri = "sqlite:///" + os.path.abspath(db)
    return uri


def sqlite_path(uri: str) -> str | None:
    if not uri.startswith("sqlite:///"):
        return None
    return uri[len("sqlite:///"):].split("?", 1)[0]


def check_tracking_store(uri: str, timeout_s: float) -> None:
    """Fail fast, before any run exists, when ``uri`` cannot work."""
    scheme = urlparse(uri).scheme
    fix = "point mlflow.tracking_uri (or MLFLOW_TRACKING_URI) at a running server or at sqlite:///mlflow.db"
    if is_server(uri):
        try:
            with server_wait.health(uri, timeout_s) as response:
                if response.status != 200:
                    raise TrackingUnavailable(
                        f"The MLflow tracking server at {uri} answered /health with HTTP {response.status}; {fix}."
                    )
        except urllib.error.HTTPError as exc:
            raise TrackingUnavailable(
                f"The MLflow tracking server at {uri} answered /health with HTTP {exc.code}; {fix}."
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise TrackingRefused(
                    f"The certificate of the MLflow tracking server at {uri} is not trusted ({reason.verify_message}); "
                    "point MLFLOW_TRACKING_SERVER_CERT_PATH at its certificate or CA bundle "
                    "(scripts/tracking_server.sh cert prints the path of the one it made)."
                ) from None
            raise TrackingUnavailable(
                f"The MLflow tracking server at {uri} cannot be reached within {timeout_s:g} s "
                f"({reason}); start it, or {fix}."
            ) from None
        _check_credentials(uri)
    elif scheme == "sqlite":
        folder = os.path.dirname(sqlite_path(uri) or "") or "."
        if not os.path.isdir(folder):
            raise TrackingUnavailable(
                f"The folder {folder!r} of the MLflow SQLite store {uri} does not exist; create it or {fix}."
            )
    elif scheme in ("", "file"):
        raise TrackingUnavailable(
            f"mlflow.tracking_uri={uri!r} is a file store, which MLflow >= 3.13 refuses; "
            "use sqlite:///<path>/mlflow.db (or a tracking server) instead."
        )


def _check_credentials(uri: str) -> None:
    """One authenticated request: a server that refuses the job's credentials says so now."""
    from mlflow import MlflowClient  # slow to import: loaded on use

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # an unreachable server is found by the health check and its wait
        refused = refusal(exc, uri)
        if refused is not None:
            raise refused from None


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise first use of a SQLite file: concurrent schema migrations corrupt it."""
    db = sqlite_path(uri)
    if db is None:
        yield  # a server (or a real database) serialises creation itself
        return
    with filelock.FileLock(db + ".lock", timeout=300):
        yield


def is_server(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def client(uri: str, wait: server_wait.ServerWait | None = None):
    """An ``MlflowClient`` for ``uri``; for a tracking server, one whose calls wait out an outage
    as ``wait`` says (the job's, so that every client of a job shares what it learnt; by
    default one of this client's own, waiting ``server_wait.DEFAULT_WAIT_S``)."""
    from mlflow import MlflowClient  # slow to import: loaded on use

    if not is_server(uri):
        return MlflowClient(tracking_uri=uri)
    if wait is None:
        wait = server_wait.ServerWait(uri)
    elif wait.uri != uri:
        raise ValueError(f"The server wait for {wait.uri} cannot serve a client of {uri}.")
    server_wait.apply_http_defaults()
    return server_wait.PatientClient(MlflowClient(tracking_uri=uri), wait)


def wait_for_tracking_store(uri: str, timeout_s: float, wait: server_wait.ServerWait) -> None:
    """``check_tracking_store``, waiting up to ``wait.wait_s`` for a tracking server that does
    not answer yet (one restarting as a job of a sweep starts)."""
    try:
        check_tracking_store(uri, timeout_s)
    except TrackingUnavailable as exc:
        wait_s = wait.wait_s
        if not is_server(uri) or wait_s <= 0 or isinstance(exc, TrackingRefused):
            raise
        log.warning("%s Waiting up to %g s for it (mlflow.server_wait_s).", str(exc).split(";")[0] + ".", wait_s)
        if not wait.until_healthy(wait_s):
            head, _, fix = str(exc).partition(";")
            raise TrackingUnavailable(f"{head}, nor after waiting mlflow.server_wait_s={wait_s:g} s for it;{fix}") from None
        check_tracking_store(uri, timeout_s)


# A run's tag naming the request that created it: a repeated request (MLflow's retry after a
# reply that never arrived) creates a second run with the same value, which create_run removes.
CREATION_TAG = "al_experiments.creation"


def create_run(uri: str, experiment_id: str, run_name: str, tags: dict[str, str], token: str | None = None,
               wait: server_wait.ServerWait | None = None) -> str:
    """Create a run and return its id; exactly one run, even where MLflow repeated the request
    (``token``: the creation's, by default a new one; ``wait``: see ``client``)."""
    token = token or uuid.uuid4().hex
    mlflow_client = client(uri, wait)
    run_id = mlflow_client.create_run(experiment_id, run_name=run_name, tags={**tags, CREATION_TAG: token}).info.run_id
    if is_server(uri):
        for twin in mlflow_client.search_runs([experiment_id], f"tags.`{CREATION_TAG}` = '{token}'"):
            if twin.info.run_id != run_id:
                mlflow_client.delete_run(twin.info.run_id)
    return run_id


def ensure_experiment(uri: str, name: str, wait: server_wait.ServerWait | None = None) -> str:
    """The id of experiment ``name``, created (with the store) if missing (``wait``: see
    ``client``).

    For a SQLite store the artifacts go to ``mlartifacts/`` beside the database file, so a
    store is one self-contained folder whatever the working directory was.
    """
    from mlflow.exceptions import MlflowException  # slow to import: loaded on use

    with _store_lock(uri):
        mlflow_client = client(uri, wait)
        try:
            experiment = mlflow_client.get_experiment_by_name(name)
        except MlflowException as exc:
            raise (refusal(exc, uri, name) or exc) from None
        if experiment is None:
            db = sqlite_path(uri)
            location = Path(db).resolve().parent.joinpath("mlartifacts").as_uri() if db else None
            try:
                return mlflow_client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
            except MlflowException:
                experiment = mlflow_client.get_experiment_by_name(name)  # created meanwhile by another job
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise TrackingUnavailable(
                f"The MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) "
                "or choose another mlflow.experiment_name."
            )
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # made elsewhere: mark it, unless its owner chose a kind
            mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return experiment.experiment_id


# The UI loads a saved view from the experiment tag ``mlflow.sharedViewState.<key>`` when its
# address carries ``viewStateShareKey=<key>`` (MLflow's own "share view"); ``workflowType``
# opens the model-training pages rather than the GenAI overview.
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
UI_QUERY = "workflowType=machine_learning"


NOTE_TAG = "mlflow.note.content"  # a run page's description


def sweep_view_key(sweep_dir: str | os.PathLike[str]) -> str:
    """The key of a sweep's saved UI view: derived from its folder, the same in every process."""
    return "sweep-" + hashlib.sha256(str(Path(sweep_dir).resolve()).encode()).hexdigest()[:16]


def share_sweep_view(uri: str, experiment_id: str, sweep_dir: str | os.PathLike[str],
                     wait: server_wait.ServerWait | None = None) -> str:
    """Save a UI view of one sweep: its runs grouped by query, and test accuracy against
    labelled points as the charts' x axis. Returns the view's key (see ``runs_page``)."""
    folder = str(Path(sweep_dir).resolve())
    key = sweep_view_key(folder)
    state = {
        "searchFilter": "tags.sweep = '{}'".format(folder.replace("'", "\\'")),
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "query"}]},
        "useGroupedValuesInCharts": True,
        "globalLineChartConfig": {"xAxisKey": "metric", "selectedXAxisMetricKey": "labeled_pool_size",
                                  "lineSmoothness": 0},
        "chartsSearchFilter": "test_accuracy",
    }
    client(uri, wait).set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + key, json.dumps(state))
    return key


def ui_address(uri: str) -> str:
    """The UI's address for this store: the server's own, or for a local store the one
    ``make ui`` / ``mlflow ui`` serves."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


def runs_page(uri: str, experiment_id: str, run_id: str | None = None, view: str | None = None) -> str:
    """Where the MLflow UI shows the experiment's runs, one run, or a saved view of them
    (``view``: a key from ``share_sweep_view``, shown as charts)."""
    page = f"{ui_address(uri)}/#/experiments/{experiment_id}/runs"
    if run_id:
        return f"{page}/{run_id}?{UI_QUERY}"
    if view:
        return f"{page}?{UI_QUERY}&viewStateShareKey={view}&compareRunsMode=CHART"
    return f"{page}?{UI_QUERY}"


def set_run_description(uri: str, run_id: str, text: str, wait: server_wait.ServerWait | None = None) -> None:
    """A run page's description (MLflow's ``mlflow.note.content`` tag)."""
    client(uri, wait).set_tag(run_id, NOTE_TAG, text)


def run_experiment_id(uri: str, run_id: str, wait: server_wait.ServerWait | None = None) -> str:
    return client(uri, wait).get_run(run_id).info.experiment_id
