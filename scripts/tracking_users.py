"""Users of the shared tracking server, as its admin (called by ``tracking_server.sh``).

    tracking_users.py URI USERS_DIR add-user NAME [EXPERIMENT...]
    tracking_users.py URI USERS_DIR grant NAME EXPERIMENT [PERMISSION]

The admin's credentials come from the environment (MLFLOW_TRACKING_USERNAME/PASSWORD), the
server's certificate from MLFLOW_TRACKING_SERVER_CERT_PATH. A new user's password is generated
here and written only to ``USERS_DIR/NAME.credentials``, in the format of MLflow's credentials
file (``~/.mlflow/credentials``), readable by its owner alone; it is never printed.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path

PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
# The REST endpoints of MLflow's basic-auth app that its AuthServiceClient calls. That client lives
# in MLflow's server package, whose import (the whole server) took 4 s of each 5 s command here;
# tests/test_tracking_users.py holds these paths to the client's.
CREATE_USER = "/api/2.0/mlflow/users/create"
GRANT_PERMISSION = "/api/3.0/mlflow/users/permissions/grant"
REVOKE_PERMISSION = "/api/3.0/mlflow/users/permissions/revoke"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def fail(sentence: str) -> None:
    print(f"tracking_server: {sentence}", file=sys.stderr)
    raise SystemExit(1)


def _post(uri: str, endpoint: str, payload: dict[str, str]) -> None:
    """POST ``payload`` to one of the auth app's endpoints as MLflow's client does (the admin's
    credentials and the server's certificate from the environment, MLflow's retries); a refusal
    raises its ``MlflowException``."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    verify_rest_response(http_request(get_default_host_creds(uri), endpoint, "POST", json=payload), endpoint)


def grant(uri: str, user: str, experiment: str, permission: str) -> None:
    from mlflow.exceptions import MlflowException

    from al_experiments.tracking.mlflow_store import ensure_experiment

    eid = ensure_experiment(uri, experiment)  # created by the admin if missing, as a job would make it
    target = {"username": user, "resource_type": "experiment", "resource_id": eid}
    try:
        _post(uri, GRANT_PERMISSION, {**target, "permission": permission})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        _post(uri, REVOKE_PERMISSION, target)  # a grant is replaced, not stacked
        _post(uri, GRANT_PERMISSION, {**target, "permission": permission})
    print(f"{user}: {permission} on experiment {experiment!r} (id {eid})", file=sys.stderr)


def add_user(uri: str, users_dir: Path, user: str, experiments: list[str]) -> None:
    from mlflow.exceptions import MlflowException

    credentials = users_dir / f"{user}.credentials"
    password = secrets.token_urlsafe(24)
    try:
        _post(uri, CREATE_USER, {"username": user, "password": password})
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            fail(f"user {user!r} exists already; grant them an experiment with: tracking_server.sh grant {user} EXPERIMENT")
        raise
    # written whole or not at all, readable by its owner alone from the first byte
    partial = credentials.with_suffix(".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(f"[mlflow]\nmlflow_tracking_username = {user}\nmlflow_tracking_password = {password}\n")
    os.replace(partial, credentials)
    for experiment in experiments:
        grant(uri, user, experiment, "MANAGE")
    print(credentials)


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] not in ("add-user", "grant"):
        fail("usage: tracking_server.sh add-user NAME [EXPERIMENT...] | grant NAME EXPERIMENT [PERMISSION]")
    uri, users_dir, command, user, *rest = argv
    if not NAME.match(user) or user == "admin":
        fail(f"{user!r} is not a user name to add: use letters, digits, '.', '_' or '-' (not 'admin')")
    if command == "add-user":
        add_user(uri, Path(users_dir), user, rest)
        return
    if not rest or len(rest) > 2:
        fail("usage: tracking_server.sh grant NAME EXPERIMENT [READ|EDIT|MANAGE|NO_PERMISSIONS]")
    permission = (rest[1] if len(rest) == 2 else "MANAGE").upper()
    if permission not in PERMISSIONS:
        fail(f"permission {rest[1]!r} is not one of {', '.join(PERMISSIONS)}")
    grant(uri, user, rest[0], permission)


if __name__ == "__main__":
    main(sys.argv[1:])
