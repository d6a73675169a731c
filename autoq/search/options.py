"""The options of one search (``autoq search``'s flags), checked and completed by
:meth:`SearchOptions.resolved`. Imported by the dispatcher (``autoq.search.runner``) and by
every backend, so it imports none of them."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from autoq.errors import UserError
from autoq.search.artifacts import store_name
from autoq.search.study import Budget
from autoq.space import SearchSpace, check_targets

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")


@dataclass
class SearchOptions:
    space: SearchSpace
    budget: Budget
    out_dir: Path
    targets: list[str] | None = None          # default: the space's targets
    sampler: str = "tpe"
    backend: str = "local"
    workers: int = 1
    address: str | None = None
    resume: bool = False
    force: bool = False
    seed: int | None = None                   # default: the space's training.seed
    epochs: int | None = None                 # default: the space's training.epochs
    cache_dir: Path | None = None             # float baselines; default runs/.autoq-cache
    proposals: int | None = None              # sensitivity/ILP trials after the presets;
                                              # None = auto (half the rest), 0 = off
    storage: str | None = None                # shared Optuna storage URL; None: <out>/study.db
    study: str | None = None                  # the study in --storage (default: the run folder's name)
    artifacts: str | Path | None = None       # artifact store: folder or s3://BUCKET; default <out>/artifacts
    heartbeat: float = 10.0                   # shared study: seconds between a worker's heartbeats

    def resolved(self) -> "SearchOptions":
        """Checked options with every default filled in: a new object (neither these options
        nor their space are changed)."""
        out_dir = Path(self.out_dir).expanduser().resolve()
        targets = check_targets(list(self.targets or self.space.targets))
        self._check_backend()
        study = self._resolved_study(out_dir)
        if self.epochs is not None and self.epochs < 1:
            raise UserError(f"--epochs: got {self.epochs}; allowed: an integer >= 1")
        epochs = self.space.epochs if self.epochs is None else self.epochs
        return replace(self, out_dir=out_dir, targets=targets, study=study, epochs=epochs,
                       seed=self.space.seed if self.seed is None else self.seed,
                       space=self._resolved_space(epochs),
                       cache_dir=Path(self.cache_dir or out_dir.parent / ".autoq-cache").resolve(),
                       artifacts=store_name(self.artifacts or out_dir / "artifacts"))  # a folder or s3://BUCKET

    def _check_backend(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"--backend: got {self.backend!r}; allowed: {', '.join(BACKENDS)}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise UserError(f"--workers: got {self.workers!r}; allowed: an integer >= 1")
        if self.backend == "local" and self.workers != 1:
            raise UserError(f"--workers {self.workers}: the local backend runs one trial at a time; "
                            "use --backend ray for parallel trials")
        if self.address and self.backend != "ray":
            raise UserError("--address is for --backend ray")

    def _resolved_study(self, out_dir: Path) -> str | None:
        """The study's name in --storage (None: the run folder's own study.db)."""
        from autoq.search.storage import check_url

        if self.storage is None:
            if self.study is not None:
                raise UserError("--study names a study in --storage; give --storage URL too")
            return None
        check_url(self.storage)
        if self.backend != "local":
            raise UserError("--storage: shared-storage workers run the local backend (start one "
                            "`autoq search --storage ...` per machine); --backend ray uses the run folder")
        if not (isinstance(self.heartbeat, (int, float)) and self.heartbeat > 0):
            raise UserError(f"--heartbeat: got {self.heartbeat!r}; allowed: seconds > 0")
        return self.study or out_dir.name

    def _resolved_space(self, epochs: int) -> SearchSpace:
        """The space as this search runs it: screening off when it would save nothing, the
        data path absolute (Ray workers may run elsewhere)."""
        sp = self.space
        changes: dict = {}
        if sp.screen and sp.screen.epochs >= epochs:
            # only a command-line --epochs gets here (the space's own epochs are checked when it is
            # parsed): a screen as long as the training saves nothing, so --epochs 1 turns it off
            log.info("--epochs %d <= training.screen.epochs %d of %s: no screening", epochs,
                     sp.screen.epochs, sp.source)
            changes["screen"] = None
        if sp.data_path:   # stored once, resolved, in the study's space (export reads it there)
            data_path = str(Path(sp.data_path).expanduser().resolve())
            changes.update(data_path=data_path, raw={**sp.raw, "data_path": data_path})
        return replace(sp, **changes) if changes else sp
