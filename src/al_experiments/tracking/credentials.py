"""Credentials stay in their files: a tracking URI that carries one is refused, never logged.

A job records its tracking URI where everyone who can read the run sees it (the MLflow params,
the checkpoint, Hydra's saved config, the log), so a URI must not carry a secret. Credentials
for a tracking server come from where MLflow reads them and nothing is recorded:
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (or ``MLFLOW_TRACKING_TOKEN``) in the
environment, or ``~/.mlflow/credentials``; a database store's password from libpq's
``PGPASSFILE`` (``~/.pgpass``) or its driver's equivalent. Refusing such a URI, rather than
redacting it wherever it would be shown, keeps the rule checkable in one place: Hydra writes
the command line to ``.hydra/`` before any job code could redact it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

# query parameters that carry a secret in the URIs of MLflow's stores and of SQLAlchemy drivers
_SECRET_PARAMETER = re.compile(r"(pass(word)?|pwd|secret|token|api[_-]?key|access[_-]?key|sig(nature)?)$", re.I)
# where a job's credentials go instead, as MLflow's client reads them
SIGN_IN = ("set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment or write them "
           "to ~/.mlflow/credentials")


class CredentialInUri(ValueError):
    """The message is one sentence that shows the URI with its secret masked."""


def redact(uri: str) -> str:
    """``uri`` with the password of its user part and every secret query value masked."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = (user.split(":", 1)[0] + ":***" if ":" in user else user) + "@" + host
    query = "&".join(f"{key}=***" if _SECRET_PARAMETER.search(key) else f"{key}={value}"
                     for key, value in parse_qsl(parts.query, keep_blank_values=True))
    return parts._replace(netloc=netloc, query=query).geturl()


_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def redact_text(text: str) -> str:
    """``text`` with every URI in it redacted: for sentences that echo what the user typed."""
    return _URI.sub(lambda match: redact(match.group(0)), text)


def refuse_credentials(uri: str, setting: str = "mlflow.tracking_uri") -> None:
    """Raise ``CredentialInUri`` if ``uri`` carries a password or token: a password in its user
    part, any user part of an HTTP(S) URI (MLflow's client would send it as basic auth), or a
    secret query parameter. A bare user name of a database URI is no secret and passes."""
    parts = urlsplit(uri)
    user = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else None
    secret_keys = [key for key, _ in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_PARAMETER.search(key)]
    if user is None and not secret_keys:
        return
    if user is not None and ":" not in user and not secret_keys and parts.scheme not in ("http", "https"):
        return
    what = "a password" if user is not None and ":" in user else "credentials" if user is not None else f"the secret {secret_keys[0]!r}"
    raise CredentialInUri(
        f"{setting} carries {what} ({redact(uri)}), which would be logged with the run: give the URI "
        f"without it and {SIGN_IN} (a database's password: PGPASSFILE)."
    )
