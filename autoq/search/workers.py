"""Cooperating workers on one shared study (``--storage URL --study NAME``).

Every worker registers in the study (study user_attr ``worker:<host>:<pid>``: host, pid, since,
sampler seed, ``beat`` = last heartbeat, unix time) and a thread renews ``beat`` every
``--heartbeat`` seconds. A worker is *live* while its beat is younger than ``GRACE`` heartbeats
(machines' clocks must agree to within that: NTP). Each trial records its ``worker``.

Budget (exactly N counted trials overall, the counting rules of ``autoq.search.study``):

- before each ask: ``counted >= N`` -> stop; ``counted + live running >= N`` -> wait (one of
  those may still die and need a retry); else ask.
- after the ask, the race of workers asking at once: a trial is *surplus* if ``counted`` plus
  the live RUNNING trials numbered below it already reach N; it is closed as FAIL with status
  ``unused`` (not counted) and enqueued parameters are put back. The lowest-numbered asker
  always wins, so the total never passes N.
- a RUNNING trial whose worker is not live (killed, machine lost) is marked FAIL with status
  ``interrupted`` by the first worker that notices, which enqueues its parameters again
  (``retry_of``): another worker retries it, and it is not counted.
- the same config running in a lower-numbered live trial: wait for it and reuse its result
  (the config cache of ``autoq.search.recording``, read from the storage before every trial).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import zlib

from autoq.errors import UserError
from autoq.search.study import counted

log = logging.getLogger(__name__)

PREFIX = "worker:"
GRACE = 4            # heartbeats a live worker may miss
UNUSED = "unused"    # status of a surplus trial (never counted, never retried)


def worker_attrs() -> dict:
    """Recorded on every trial, whatever the backend's storage."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def worker_seed(seed: int, creator: bool) -> int:
    """The study's creator samples with the run's seed (a one-worker run is reproducible);
    joiners with an offset derived from host, pid and time (recorded on their trials)."""
    if creator:
        return seed
    me = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
    return seed + 1 + zlib.crc32(me.encode()) % 1_000_000


class Worker:
    """This process's membership in a shared study: heartbeat, liveness, budget slots."""

    def __init__(self, study, interval: float, seed: int):
        self.study, self.interval, self.seed = study, float(interval), seed
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self.record = {**worker_attrs(), "since": time.time(), "sampler_seed": seed, "interval": self.interval}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- registry and heartbeat ---------------------------------------------------------------

    def beat(self, ended: bool = False) -> None:
        rec = {**self.record, "beat": time.time(), **({"ended": time.time()} if ended else {})}
        self.study.set_user_attr(PREFIX + self.id, rec)

    def start(self) -> "Worker":
        self.beat()
        self._thread = threading.Thread(target=self._run, name="autoq-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - a storage hiccup: try again next beat
                log.warning("heartbeat to the study failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.beat(ended=True)
        except Exception as exc:  # noqa: BLE001 - leaving anyway; the beat goes stale
            log.warning("could not mark this worker ended in the study: %s", exc)

    def claim(self, trial) -> None:
        for key, value in {**worker_attrs(), "worker": self.id, "sampler_seed": self.seed}.items():
            trial.set_user_attr(key, value)

    # --- liveness -----------------------------------------------------------------------------

    def live_workers(self) -> dict[str, dict]:
        return live_workers(self.study)

    def _live_trial(self, t, live: dict, now: float) -> bool:
        who = t.user_attrs.get("worker")
        if who is None:   # asked a moment ago, not yet claimed: live for one grace period
            started = t.datetime_start.timestamp() if t.datetime_start else now
            return now - started <= GRACE * self.interval
        return who in live

    def running(self, trials=None) -> tuple[list, list]:
        """(live, stale) RUNNING trials of the study."""
        import optuna

        trials = self.study.get_trials(deepcopy=False) if trials is None else trials
        live, now = self.live_workers(), time.time()
        run = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        alive = [t for t in run if self._live_trial(t, live, now)]
        return alive, [t for t in run if t not in alive]

    def repair_stale(self) -> list[int]:
        """Mark RUNNING trials of dead workers interrupted and enqueue them again (module doc)."""
        from autoq.search.trials import close_trial

        _, stale = self.running()
        retried = []
        for t in stale:
            reason = f"interrupted: worker {t.user_attrs.get('worker', '?')} stopped (no heartbeat)"
            if close_trial(self.study, t.number, "interrupted", reason):
                retry(self.study, t)
                retried.append(t.number)
        if retried:
            log.info("trials of stopped workers re-enqueued: %s", retried)
        return retried

    # --- budget -------------------------------------------------------------------------------

    def next_step(self, budget_trials: int | None) -> str:
        """'run', 'wait' or 'stop' for a trial budget (module doc); a time budget: 'run'."""
        self.repair_stale()
        if budget_trials is None:
            return "run"
        trials = self.study.get_trials(deepcopy=False)
        done = sum(counted(t) for t in trials)
        if done >= budget_trials:
            return "stop"
        alive, _ = self.running(trials)
        return "wait" if done + len(alive) >= budget_trials else "run"

    def surplus(self, trial, budget_trials: int | None) -> bool:
        """True (and the trial closed as unused) if lower-numbered trials fill the budget."""
        if budget_trials is None:
            return False
        trials = self.study.get_trials(deepcopy=False)
        alive, _ = self.running(trials)
        used = sum(counted(t) for t in trials) + sum(t.number < trial.number for t in alive)
        if used < budget_trials:
            return False
        from autoq.search.trials import close_trial, frozen_trial

        frozen = frozen_trial(self.study, trial.number)
        fixed = frozen.system_attrs.get("fixed_params")
        close_trial(self.study, trial.number, UNUSED, "budget filled by other workers that asked at the same time")
        if fixed:   # an enqueued preset / proposal / retry: back into the queue
            self.study.enqueue_trial(fixed, user_attrs=_queue_attrs(frozen.user_attrs))
        return True

    def wait_same_config(self, trial, config_hash: str) -> int | None:
        """Wait while a lower-numbered live trial runs the same config; its number, or None."""
        waited = None
        while True:
            alive, _ = self.running()
            same = [t for t in alive if t.number < trial.number and t.user_attrs.get("config_hash") == config_hash]
            if not same:
                return waited
            if waited is None:
                log.info("trial %d: same config as running trial %d, waiting for its result", trial.number,
                         same[0].number)
            waited = same[0].number
            time.sleep(min(self.interval, 2.0))


def live_workers(study) -> dict[str, dict]:
    """Registered workers whose heartbeat is fresh and that have not ended."""
    attrs = study.user_attrs
    now = time.time()
    return {k[len(PREFIX):]: v for k, v in attrs.items()
            if k.startswith(PREFIX) and isinstance(v, dict) and not v.get("ended")
            and now - float(v.get("beat", 0)) <= GRACE * float(v.get("interval", 10))}


def refuse_if_live(study, what: str, storage_label: str) -> None:
    """--force on a study others work on: refused, naming one live worker."""
    live = live_workers(study)
    if live:
        wid, rec = next(iter(live.items()))
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.get("since", 0)))
        raise UserError(f"{what}: study {study.study_name!r} in {storage_label} is in use by {len(live)} live "
                        f"worker(s), e.g. pid {rec.get('pid')} on host {rec.get('host')} since {since} "
                        f"(heartbeat {time.time() - rec.get('beat', 0):.0f} s ago); stop them first")


def retry(study, trial) -> None:
    """Enqueue a trial's parameters again (``retry_of``); the retry is an ordinary trial."""
    from autoq.search.trials import frozen_trial

    frozen = frozen_trial(study, trial.number)
    params = dict(frozen.params) or frozen.system_attrs.get("fixed_params")
    if params:
        study.enqueue_trial(params, user_attrs={**_queue_attrs(frozen.user_attrs), "retry_of": frozen.number})


def _queue_attrs(attrs: dict) -> dict:
    """The attrs an enqueued trial carries (preset name, proposal), to be carried again."""
    return {k: attrs[k] for k in ("preset", "proposal", "predicted_loss", "retry_of") if k in attrs}


# --- joining ---------------------------------------------------------------------------------


def open_shared(opts, info, sampler_for) -> tuple[object, bool, int]:
    """Create study ``opts.study`` in ``opts.storage`` or join it: (study, created, sampler seed).

    Creation is atomic (Optuna refuses a second study of the same name), so exactly one
    worker creates it and enqueues the presets. ``--force`` deletes the study first, refused
    while any worker is live; ``--resume`` only insists that the study exists.
    """
    import optuna

    from autoq.search.storage import label, open_storage
    from autoq.search.study import check_same_run, directions, init_study
    from autoq.search.trials import StoredStudy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, where = open_storage(opts.storage), label(opts.storage)
    names = optuna.study.get_all_study_names(storage)
    if opts.force and opts.resume:
        raise UserError("--resume and --force contradict each other: choose one")
    if opts.force and opts.study in names:
        refuse_if_live(optuna.load_study(study_name=opts.study, storage=storage), "--force", where)
        for name in names:   # the study and its baseline claims (autoq.search.artifacts)
            if name == opts.study or name.startswith(opts.study + ":baseline:"):
                optuna.delete_study(study_name=name, storage=storage)
    elif opts.resume and opts.study not in names:
        raise UserError(f"--resume: no study {opts.study!r} in {where} (studies there: "
                        f"{', '.join(sorted(names)) or 'none'})")
    try:
        seed = worker_seed(opts.seed, creator=True)
        study = optuna.create_study(storage=storage, study_name=opts.study, sampler=sampler_for(seed),
                                    directions=directions(info))
        init_study(study, info)
        return StoredStudy.of(study, storage), True, seed
    except optuna.exceptions.DuplicatedStudyError:
        seed = worker_seed(opts.seed, creator=False)
        study = StoredStudy(opts.study, storage, sampler_for(seed))
    _wait_ready(study, opts.heartbeat)
    check_same_run(f"--study {opts.study} in {where}", study, info)
    return study, False, seed


def _wait_ready(study, interval: float, patience: float = 120.0) -> None:
    """A study created a moment ago: wait for its creator's attrs and presets (``ready``)."""
    deadline = time.monotonic() + patience
    while not study.user_attrs.get("ready"):
        if time.monotonic() > deadline:
            if "space" in study.user_attrs:
                log.warning("study %s: its creator never marked it ready; joining anyway", study.study_name)
                return
            raise UserError(f"--study {study.study_name}: the study exists but was never set up (its creator "
                            "stopped?); start over with --force")
        time.sleep(min(interval, 1.0))
