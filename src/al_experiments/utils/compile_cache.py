"""TensorFlow's persistent XLA compilation cache, shared by the processes of a sweep.

A process compiles each XLA program it runs (the dense networks' training, ``wrapper.training``)
once; without this, every job of a sweep that runs in its own process (``hydra/launcher=local``,
SLURM) compiles the same programs again. With ``use_compile_cache(folder)`` called before
TensorFlow is imported, the first process to compile a program writes the executable into the
folder and the others load it. TensorFlow reads its XLA flags once, when it loads, so a call
after the import changes nothing (the jobs of a basic-launcher sweep run in one process and
share its compiled programs anyway).

- TensorFlow keys an entry by the program itself (its signature and HLO, compared in full on
  load), not by the TensorFlow build or the processor it was compiled for: an executable built
  with AVX-512 instructions would crash a node without them. So entries go into a subfolder
  per TensorFlow version and processor instruction set, and a cluster of mixed nodes keeps one
  set per kind of node.
- Only CPU programs are cached: a GPU executable is specific to the GPU model, which the key
  does not record either.
- Writers are safe together: TensorFlow writes an entry to a unique temporary file in the
  folder and renames it into place, so a reader sees a whole entry or none, and two jobs that
  compiled the same program at once leave one of their (identical) entries.
- Jobs that start together (a local sweep, the first tasks of an array) would all find the
  cache empty and all compile. ``first_compile`` lets one process at a time compile a given
  program while the others wait for its entry and load it: one compile per sweep.
- The cache changes how fast a job starts, never its results. A folder that cannot be made or
  written is therefore no reason to stop a job: it is used read-only where it can be read
  (a cache filled once and shared read-only), else not at all, with one warning either way.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from al_experiments.utils.quiet_tensorflow import KEEP_LOGS_ENV

log = logging.getLogger(__name__)

XLA_FLAGS_ENV = "TF_XLA_FLAGS"
_DIRECTORY_FLAG = "--tf_xla_persistent_cache_directory"
# How long a process waits for another to compile the same program before compiling it itself
# (a compile takes seconds; a process that holds the lock longer is stuck, or its disk is).
COMPILE_WAIT_S = 120.0
_writable_cache: Path | None = None  # this process's cache, where it may write entries


def use_compile_cache(folder: str | os.PathLike[str] | None) -> Path | None:
    """Have TensorFlow keep its compiled XLA programs in ``folder`` (a subfolder of it for this
    TensorFlow and processor) and load them from there; return that subfolder, or None where no
    cache is used (``folder`` None, TensorFlow already loaded, a cache directory set by the user
    in ``TF_XLA_FLAGS``, or a folder that can be neither written nor read)."""
    if folder is None:
        return None
    if "tensorflow" in sys.modules:
        log.debug("TensorFlow is loaded: its XLA flags are read, the compile cache stays as it is")
        return None
    flags = os.environ.get(XLA_FLAGS_ENV, "")
    if _DIRECTORY_FLAG in flags:
        log.debug("%s names a compile cache already: %s", XLA_FLAGS_ENV, flags)
        return None
    path = Path(folder).expanduser().absolute() / cache_key()
    if '"' in str(path):  # TF_XLA_FLAGS takes a value in double quotes, which cannot hold one
        log.warning("The compile cache %s is not used: its path holds a double quote; rename the folder or "
                    "set compile_cache=null.", path)
        return None
    reason = _unwritable(path)
    read_only = bool(reason)
    if read_only:
        if not (path.is_dir() and os.access(path, os.R_OK | os.X_OK)):
            log.warning("The compile cache %s cannot be made (%s): each job compiles its XLA programs itself; fix "
                        "the folder, choose another with compile_cache=..., or set compile_cache=null.", path, reason)
            return None
        log.warning("The compile cache %s is read-only (%s): its programs are used, new ones are not kept.",
                    path, reason)
    global _writable_cache
    _writable_cache = None if read_only else path
    new_flags = [f'{_DIRECTORY_FLAG}="{path}"', "--tf_xla_persistent_cache_device_types=CPU"]
    if read_only:
        new_flags.append("--tf_xla_persistent_cache_read_only=true")
    os.environ[XLA_FLAGS_ENV] = " ".join(filter(None, [flags, *new_flags]))
    if os.environ.get(KEEP_LOGS_ENV, "").strip().lower() not in ("1", "true", "yes"):
        # Loading an entry logs two C++ errors that are none: a failed attempt to read the entry
        # as text before it is read as binary, and a "machine type" mismatch over two tuning
        # hints that the host's feature list never names. Errors that matter reach Python as
        # exceptions. A user's own level is kept.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return path


@contextmanager
def first_compile(program: str) -> Iterator[None]:
    """Around a process's first call of an XLA program (``program``: a name for what it
    computes, equal in every process that compiles the same one): one process at a time runs
    it, so the first compiles and writes the entry while the others wait and then load it.
    Nothing happens without a writable cache; a lock that cannot be taken (a file system without
    locks, a wait beyond ``COMPILE_WAIT_S``) lets the process compile on its own.

    TensorFlow writes the entry as part of the compile, so a cache folder that fills up or turns
    read-only fails the call itself: that failure is raised as the ``OSError`` it is, naming the
    folder, which a job reports like any results folder to fix (a full ``state_dir``)."""
    cache = _writable_cache
    try:
        with _one_compiler_at_a_time(cache, program):
            yield
    except Exception as error:
        failure = _write_failure(error, cache)
        if failure is None:
            raise
        raise failure from None


# How TensorFlow's message names a failed write of a cache entry (it reports the C library's text).
_WRITE_FAILURES = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
                   "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES}


def _write_failure(error: Exception, cache: Path | None) -> OSError | None:
    """The ``OSError`` behind ``error`` when it is a failed write into ``cache``, else None."""
    text = str(error)
    if cache is None or str(cache) not in text:
        return None
    for reason, code in _WRITE_FAILURES.items():
        if reason in text:
            return OSError(code, os.strerror(code), str(cache))
    return None


@contextmanager
def _one_compiler_at_a_time(cache: Path | None, program: str) -> Iterator[None]:
    try:
        import fcntl  # POSIX only: elsewhere every process compiles
    except ImportError:
        fcntl = None
    if cache is None or fcntl is None:
        yield
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        handle = os.open(cache / f"{hashlib.sha256(program.encode()).hexdigest()[:16]}.lock",
                         os.O_CREAT | os.O_RDWR, 0o666)
    except OSError:
        yield
        return
    locked = False
    try:
        locked = _lock(fcntl, handle)
        yield
    finally:
        if locked:
            fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


def _lock(fcntl, handle: int) -> bool:
    deadline = time.monotonic() + COMPILE_WAIT_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                log.warning("Waited %.0f s for another process to compile the same XLA program: compiling it here "
                            "(a process holding a lock in the compile cache is stuck, or its disk is).", COMPILE_WAIT_S)
                return False
            time.sleep(0.05)
        except OSError:  # no locks on this file system
            return False


def _unwritable(path: Path) -> str:
    """Why TensorFlow could not write into ``path`` (made on its first entry, so that a job
    refused later writes nothing), or "" where it can: the folder, or its nearest existing
    ancestor, must be a folder this process may write in."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return os.strerror(errno.ENOTDIR)
    if not os.access(existing, os.W_OK | os.X_OK):
        return os.strerror(errno.EACCES)
    return ""


def cache_key() -> str:
    """``tf<version>-<instruction set>``: what a compiled CPU program depends on beyond itself."""
    try:
        version = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        version = "none"
    return f"tf{version}-{hashlib.sha256(_instruction_set().encode()).hexdigest()[:12]}"


def _instruction_set() -> str:
    """The processor's architecture and feature flags (Linux lists them; elsewhere the
    processor's name stands for them)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):  # x86, ARM
                    return f"{platform.machine()} {' '.join(sorted(value.split()))}"
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"
