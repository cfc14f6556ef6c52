"""Waiting out a tracking server that stops answering, for a bounded time.

Two layers, each for what it does well:
- MLflow's own HTTP retries (urllib3, exponential backoff) absorb a blip of a few seconds. Their
  defaults try again 0, 4, 8, ... 120 s apart, about 4 minutes in all, so a server back after
  30 s is noticed 30 s later; here they are set shorter (``HTTP_DEFAULTS``).
- ``ServerWait`` then waits for a server that is down or restarting: it polls ``/health``
  every second until ``wait_s`` has passed since the first failure, and repeats the call as soon
  as the server answers. Past ``wait_s`` the call's error goes up, and the job stops with its
  rounds checkpointed, as before. A job (and a sweep's launching process) holds one for its
  server and gives it to every client it makes (``PatientClient``), so what one wait learnt (the
  server is gone) is the job's own, never another job's in the same process.

Repeating a call is safe for everything a job sends: metrics carry the timestamp they were made
with, so a repeated ``log_batch`` writes rows the store already holds (its primary key drops
them), params and tags are idempotent. Creating a run is not; ``mlflow_store.create_run``
removes a duplicate that a repeated request made.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import requests

from al_experiments.utils.failpoints import failpoint

log = logging.getLogger(__name__)

# MLflow's retry settings for a job's requests, unless the environment sets them: 3 retries
# 0, 2 and 4 s apart (plus up to 1 s of jitter), and 30 s for one request, long enough for a
# loaded server, short enough that a hung one is noticed within a round or two.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

DEFAULT_WAIT_S = 120.0
POLL_S = 1.0


def apply_http_defaults() -> None:
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    # urllib3 warns at every retry; the wait below says once what happens, and when it ends
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (an MLflow error) means the server did not answer or answered that it
    cannot serve now (connection refused or reset, timeout, 5xx or 429 after MLflow's retries)."""
    from mlflow.exceptions import MlflowException  # slow to import: loaded on use

    if not isinstance(exc, MlflowException):
        return False
    if exc.error_code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"):
        return True
    seen: BaseException | None = exc
    for _ in range(8):  # MLflow wraps the requests error as the cause or context of its own
        seen = seen.__cause__ or seen.__context__
        if seen is None:
            return False
        if isinstance(seen, requests.exceptions.RequestException):
            return True
    return False


def health(uri: str, timeout_s: float):
    """``uri``'s ``/health`` response (a context manager), over TLS as MLflow's own client would
    make it: verified against ``MLFLOW_TRACKING_SERVER_CERT_PATH`` (else the system's CAs),
    unverified only where ``MLFLOW_TRACKING_INSECURE_TLS=true``, with the client certificate of
    ``MLFLOW_TRACKING_CLIENT_CERT_PATH``."""
    context = None
    if uri.startswith("https:"):
        context = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
            context.load_cert_chain(os.environ["MLFLOW_TRACKING_CLIENT_CERT_PATH"])
    return urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s, context=context)


def healthy(uri: str, timeout_s: float) -> bool:
    try:
        with health(uri, timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class ServerWait:
    """How one job's calls to the tracking server at ``uri`` wait out an outage: up to
    ``wait_s`` seconds (``mlflow.server_wait_s``) from a call's first failure, polling
    ``/health`` every ``poll_s``. Once a wait has run out, later calls try once (``given_up``),
    so a job that stops because its server is gone records what it can and ends, instead of
    waiting again at every call; an answer ends that.

    ``clock`` (seconds, monotonic) and ``sleep`` are the wait's time: a test gives its own to
    check the bound without spending it. The failpoint ``server_unanswered@<n>`` marks a call's
    n-th try that found the server gone (MLflow's own retries spent)."""

    def __init__(self, uri: str, wait_s: float = DEFAULT_WAIT_S, *, poll_s: float = POLL_S,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.uri = uri
        self.wait_s = float(wait_s)
        self.poll_s = poll_s
        self.given_up = False
        self._clock = clock
        self._sleep = sleep

    def until_healthy(self, seconds: float) -> bool:
        """Poll ``/health`` until it answers (True) or ``seconds`` have passed (False)."""
        deadline = self._clock() + seconds
        while True:
            left = deadline - self._clock()
            if left <= 0:
                return False
            if healthy(self.uri, timeout_s=max(0.1, min(5.0, left))):
                return True
            self._sleep(min(self.poll_s, max(0.0, deadline - self._clock())))

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)``, repeated once the server answers again if it did not."""
        from mlflow.exceptions import MlflowException  # slow to import: loaded on use

        waited_since = deadline = None
        unanswered = 0
        while True:
            try:
                result = method(*args, **kwargs)
            except MlflowException as exc:
                if not is_unreachable(exc):
                    raise
                unanswered += 1
                failpoint("server_unanswered", unanswered)
                now = self._clock()
                if deadline is None:
                    budget = 0.0 if self.given_up else self.wait_s
                    waited_since, deadline = now, now + budget
                    if budget > 0:
                        log.warning("The tracking server at %s does not answer (%s); waiting up to %g s for it "
                                    "(mlflow.server_wait_s).", self.uri, _first_line(exc), budget)
                if now >= deadline or not self.until_healthy(deadline - now):
                    self.given_up = True
                    raise
                continue
            self.given_up = False
            if waited_since is not None:
                log.warning("The tracking server at %s answers again after %.1f s; the job goes on.",
                            self.uri, self._clock() - waited_since)
            return result


class PatientClient:
    """An ``MlflowClient`` whose calls wait out an outage of its server as ``wait`` says."""

    def __init__(self, inner: Any, wait: ServerWait) -> None:
        self._inner = inner
        self._wait = wait

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._wait.call(attribute, *args, **kwargs)

        return call


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
