"""Resumable jobs: a stable identity per job and its checkpoint on disk.

A job is identified by its resolved configuration minus the keys that say where results go
(tracking store, metrics folder, run name, tags, resume switches), so re-running the same
command from anywhere maps every job to the same checkpoint. The checkpoint is rewritten
atomically after every round; what it holds is the loop's ``state()`` and where the job's
results live (MLflow run, CSV).
"""

from al_experiments.resume.checkpoint import Checkpoint, CheckpointStore, CorruptCheckpoint
from al_experiments.resume.identity import VOLATILE_KEYS, job_identity, sweep_identity

__all__ = ["Checkpoint", "CheckpointStore", "CorruptCheckpoint", "VOLATILE_KEYS", "job_identity", "sweep_identity"]
