"""``al-run`` in processes forked from one that has made al-run's imports once.

Tests that run a classical job many times over (kills at every point, fault injection, outages,
credentials) examine what a job does between its command line and its exit: its commit protocol,
what it leaves in the store and the CSVs, its output, its exit code and the signals it gets. Of
such a job's 5 s here, about 4 are Python starting and importing MLflow, scikit-learn and Hydra,
the same in every one. Here a server process (one per test process, started on first use) makes
those imports, and each job is a child forked from it that runs al-run's ``main`` with the
job's own argv, environment, working directory and standard streams: a process of its own that
dies of the signals it is sent and leaves through the interpreter's exit handlers as al-run
does. What start-up itself does is covered by the tests that run the real ``al-run`` command
(test_app_cli, test_install, test_launchers).

The server never loads TensorFlow (a process forked after TensorFlow started its threads is not
safe), so only jobs that do not load it belong here: a child that imports it is refused.
``run`` and ``Popen`` take the same arguments as ``subprocess``'s for an ``al-run`` command.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _app_helpers import AL_RUN

_server: subprocess.Popen | None = None
_current: "Popen | None" = None  # the job now running (the server runs one at a time)
# Where the servers of one test session share the list of what a job imports (set by
# conftest.py): the first to start runs the warm-up job, the others read its list.
module_list: Path | None = None
MODULE_LIST_ENV = "AL_PREFORKED_MODULE_LIST"


def _al_run_args(command: list[str]) -> list[str]:
    assert command[:len(AL_RUN)] == AL_RUN, f"not an al-run command: {command}"
    return command[len(AL_RUN):]


def _started_server() -> subprocess.Popen:
    global _server
    if _server is None or _server.poll() is not None:
        # unbuffered: a reply waited for with select must not sit in a buffer already read
        env = {**os.environ, **({MODULE_LIST_ENV: str(module_list)} if module_list else {})}
        _server = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir(), env=env, bufsize=0)
        atexit.register(_shut_down, _server)
        assert _reply(_server, 300) == {"ready": True}
    return _server


def _shut_down(server: subprocess.Popen) -> None:
    """At the test process's exit: no job left behind (one stopped at a pause point included)."""
    if _current is not None and _current.returncode is None:
        _current.kill()
    server.kill()


def _reply(server: subprocess.Popen, timeout: float | None) -> dict | None:
    """The server's next line, or None if none comes within ``timeout`` seconds."""
    if timeout is not None and not select.select([server.stdout], [], [], timeout)[0]:
        return None
    line = server.stdout.readline()
    assert line, "the preforked al-run server died"
    return json.loads(line)


class Popen:
    """An al-run job in a forked child: ``pid``, ``returncode``, ``poll``, ``wait``,
    ``send_signal`` and ``kill`` as ``subprocess.Popen``'s. ``stdout`` and ``stderr`` are open
    files (or ``subprocess.STDOUT`` for stderr) or None (the test process's own)."""

    def __init__(self, command: list[str], *, cwd: Path | str, env: dict[str, str], stdout=None, stderr=None) -> None:
        global _current
        if _current is not None and _current.returncode is None:  # left running by a failed test
            _current.kill()
            _current.wait()
        self._server = _started_server()
        out = stdout.fileno() if stdout is not None else 1
        err = out if stderr == subprocess.STDOUT else (stderr.fileno() if stderr is not None else 2)
        request = {"argv": [AL_RUN[0], *_al_run_args(command)], "cwd": str(cwd), "env": dict(env),
                   "stdout": f"/proc/{os.getpid()}/fd/{out}", "stderr": f"/proc/{os.getpid()}/fd/{err}"}
        self._server.stdin.write(json.dumps(request).encode() + b"\n")
        self._server.stdin.flush()
        self.pid = _reply(self._server, 60)["pid"]
        self.returncode: int | None = None
        _current = self

    def poll(self) -> int | None:
        if self.returncode is None:
            self._collect(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not self._collect(timeout):
            raise subprocess.TimeoutExpired(AL_RUN, timeout)
        return self.returncode

    def _collect(self, timeout: float | None) -> bool:
        reply = _reply(self._server, timeout)
        if reply is None:
            return False
        assert reply["pid"] == self.pid, reply
        self.returncode = reply["returncode"]
        return True

    def wait_until_paused(self, hang_guard_s: float = 300.0) -> None:
        """Return once the job has stopped itself at a ``:pause`` failpoint (what
        ``failpoints.wait_until_paused`` sees of a child of this process, read here from
        /proc, the job being the server's child); ``AssertionError`` if it ended instead."""
        deadline = time.monotonic() + hang_guard_s
        while self.poll() is None:
            try:
                state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:  # ended: poll says how
                continue
            if state == "T":
                return
            assert time.monotonic() < deadline, f"process {self.pid} did not reach its pause point within {hang_guard_s:g} s"
            time.sleep(0.05)
        raise AssertionError(f"process {self.pid} ended (exit code {self.returncode}) before its pause point")

    def send_signal(self, number: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, number)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def run(command: list[str], *, cwd: Path | str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
    timeout=timeout)`` for an al-run command, its job forked."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        job = Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)
        try:
            job.wait(timeout)
        except subprocess.TimeoutExpired:
            job.kill()
            job.wait()
            raise
        texts = []
        for stream in (out, err):
            stream.seek(0)
            texts.append(stream.read().decode(errors="replace"))
    return subprocess.CompletedProcess(command, job.returncode, *texts)


# ----------------------------------------------------------------------------- the server
def _serve() -> None:
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # the replies have their own descriptor; a stray print goes nowhere
    _import_what_a_job_imports(devnull)
    replies.write(json.dumps({"ready": True}) + "\n")
    for line in requests:
        request = json.loads(line)
        # opened before the reply: the caller may close its files once it has the pid
        streams = [os.open(request[name], os.O_WRONLY | os.O_APPEND | os.O_CREAT) for name in ("stdout", "stderr")]
        pid = os.fork()
        if pid == 0:
            replies.close()
            _become_the_job(request, streams, devnull)  # leaves the interpreter as al-run would
        for fd in streams:
            os.close(fd)
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"pid": pid, "returncode": os.waitstatus_to_exitcode(status)}) + "\n")


def _import_what_a_job_imports(devnull: int) -> None:
    """al-run's imports, and those a classical job makes on its way (MLflow and scikit-learn
    import much lazily), found by a job run once in a forked child against a throwaway store."""
    import importlib
    import shutil
    import threading

    from al_experiments.app import cli  # noqa: F401

    shared = Path(os.environ[MODULE_LIST_ENV]) if os.environ.get(MODULE_LIST_ENV) else None
    if shared is not None and shared.exists():
        names = shared.read_text().split()
    else:
        scratch = tempfile.mkdtemp(prefix="preforked-", dir=shared.parent if shared else None)
        listing = Path(scratch) / "modules.txt"
        pid = os.fork()
        if pid == 0:
            atexit.register(lambda: listing.write_text("\n".join(sorted(sys.modules))))
            argv = ["+experiment=smoke", "model=logistic_regression", "dataset=breast_cancer", "loop.max_rounds=1",
                    f"hydra.run.dir={scratch}/run", f"mlflow.tracking_uri=sqlite:///{scratch}/mlflow.db"]
            _become_the_job({"argv": [AL_RUN[0], *argv], "cwd": scratch, "env": dict(os.environ)},
                            [devnull, devnull], devnull)
        os.waitpid(pid, 0)
        names = listing.read_text().split() if listing.exists() else []
        if names and shared is not None:  # whole or not at all: another server may read it now
            listing.replace(shared)
        shutil.rmtree(scratch, ignore_errors=True)
    for name in names:
        if name not in sys.modules and not name.startswith(("tensorflow", "keras", "__main__")):
            try:
                importlib.import_module(name)
            except Exception:  # a module that imports only in its package's own order: a job will
                pass
    assert "tensorflow" not in sys.modules and threading.active_count() == 1, threading.enumerate()


def _become_the_job(request: dict, streams: list[int], devnull: int) -> None:
    """Become the job: its streams, folder, environment, argv and signal handling; then al-run's
    own entry point, ``sys.exit(main())``, so the job leaves through the interpreter's exit (its
    threads joined, exit handlers run, streams flushed, the exit code set) as al-run does."""
    os.dup2(devnull, 0)
    for fd, target in zip((1, 2), streams):
        os.dup2(target, fd)
    for target in set(streams) - {0, 1, 2}:
        os.close(target)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    atexit.register(_refuse_tensorflow)  # runs first: exit handlers run last registered first

    from al_experiments.app.cli import main

    sys.exit(main())


def _refuse_tensorflow() -> None:
    if "tensorflow" in sys.modules:
        print("Error: a preforked job loaded TensorFlow; run it with the real al-run (subprocess).", file=sys.stderr)
        sys.stderr.flush()
        os._exit(70)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the test process's Ctrl-C is its own to handle
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _serve()
