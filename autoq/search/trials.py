"""Writing to trials other than the ones this process asked for, through Optuna's public API.

A process finishes its own trials with ``trial.set_user_attr`` and ``study.tell``. A trial left
RUNNING by a process that died (``--resume``, a stale worker of a shared study) has no live
``Trial`` here: it is written through the documented ``BaseStorage`` methods, addressed by
study name and trial number. :class:`StoredStudy` is the Optuna study that keeps the storage it
was opened on for that (``open_study`` and ``open_shared`` return one).
"""
from __future__ import annotations

import optuna


class StoredStudy(optuna.study.Study):
    """An Optuna study that keeps its storage (``storage``) for writes to other processes' trials."""

    def __init__(self, study_name: str, storage: optuna.storages.BaseStorage, sampler=None):
        super().__init__(study_name=study_name, storage=storage, sampler=sampler)
        self.storage = storage

    @classmethod
    def of(cls, study: optuna.study.Study, storage: optuna.storages.BaseStorage) -> "StoredStudy":
        """``study`` (made by ``optuna.create_study`` / ``load_study`` on ``storage``), keeping it."""
        return cls(study.study_name, storage, study.sampler)


def trial_id(study: StoredStudy, number: int) -> int:
    storage = study.storage
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name),
                                                          number)


def frozen_trial(study: StoredStudy, number: int) -> optuna.trial.FrozenTrial:
    """Trial ``number`` as stored now (enqueued parameters in ``system_attrs["fixed_params"]``)."""
    return study.storage.get_trial(trial_id(study, number))


def close_trial(study: StoredStudy, number: int, status: str, reason: str) -> bool:
    """RUNNING -> FAIL with ``status`` and ``fail_reason``; False if another process closed it first."""
    storage = study.storage
    try:
        tid = trial_id(study, number)
        storage.set_trial_user_attr(tid, "status", status)   # attrs first: Optuna refuses attrs on a finished trial
        storage.set_trial_user_attr(tid, "fail_reason", reason)
        return bool(storage.set_trial_state_values(tid, optuna.trial.TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:   # another process closed it first
        return False
