"""scripts/tracking_users.py, the admin's side of the shared server (add-user, grant), where no
server is needed: its calls are tested against the real server in test_tracking_access."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


# importing MLflow's server package warns about a deprecation of its own
@pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated")
def test_the_admin_script_calls_the_endpoints_of_mlflows_auth_client():
    """The script posts to the auth app's endpoints itself (importing MLflow's client would load
    the whole server): they must be the ones that client calls."""
    from mlflow.server.auth import routes

    path = Path(__file__).resolve().parents[1] / "scripts" / "tracking_users.py"
    spec = importlib.util.spec_from_file_location("tracking_users", path)
    users = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(users)
    assert (users.CREATE_USER, users.GRANT_PERMISSION, users.REVOKE_PERMISSION) == (
        routes.CREATE_USER, routes.GRANT_USER_PERMISSION, routes.REVOKE_USER_PERMISSION)
