"""Trained models travel with the results: Optuna's artifact store (issue 13, item 2).

- Every trained trial's ``model.keras`` is uploaded (``optuna.artifacts.upload_artifact``) by
  :func:`upload_trial_model`, called from ``autoq.search.recording.record`` -- the one place every
  backend stores a result. Contract: ``record`` uploads whatever ``outcome.weights_path``
  points to *on the process that calls it* (the Ray driver writes a worker's model bytes
  there first). The trial gets user_attr ``model_artifact`` = {id, store, bytes}; a trial
  whose result came from the config cache shares its source's artifact.
- ``autoq export`` gets the model through :func:`model_file`: the artifact (``--artifacts``
  or the store recorded on the trial), else ``weights_path`` (runs older than this).
- The float baseline of a shared study (``--storage``) is trained once: :class:`BaselineShare`
  lets the first worker claim it (an atomic ``create_study`` of ``<study>:baseline:<key16>``),
  train it and upload its cache folder as a tar; the others wait for it and download it into
  their own baseline cache, never retraining silently (the search's result line says which).

The store is a folder (``FileSystemArtifactStore``): ``<out>/artifacts`` by default, or
``--artifacts DIR`` -- a folder every worker and the exporting machine can read (NFS, a bind
mount) -- or an S3-compatible bucket, ``--artifacts s3://BUCKET`` (``Boto3ArtifactStore``:
AWS S3, MinIO, Ceph; boto3's own configuration). TensorFlow-free.
"""
from __future__ import annotations

import io
import json
import logging
import tarfile
import tempfile
import time
from pathlib import Path

from autoq.errors import UserError
from autoq.fileio import install_folder

log = logging.getLogger(__name__)

MODEL_ATTR = "model_artifact"
BASELINE_FILES = ("model.keras", "model.weights.h5", "result.json")


S3_SCHEME = "s3://"


def s3_client():
    """The boto3 S3 client of an ``s3://`` store (credentials, region and endpoint -- MinIO,
    Ceph -- from boto3's usual environment: AWS_* variables, ~/.aws). Tests replace it."""
    import boto3

    return boto3.client("s3")


def store_name(path: str | Path) -> str:
    """What a trial records as its store: an ``s3://BUCKET`` URL as given, a folder resolved."""
    text = str(path)
    return text if text.startswith(S3_SCHEME) else str(Path(text).expanduser().resolve())


def open_store(path: str | Path):
    """The artifact store ``path`` names: ``s3://BUCKET`` (Optuna's Boto3ArtifactStore, needs
    ``pip install 'autoq[s3]'``) or a folder (FileSystemArtifactStore, created)."""
    from optuna.artifacts import FileSystemArtifactStore

    text = str(path)
    if text.startswith(S3_SCHEME):
        bucket = text[len(S3_SCHEME):].strip("/")
        if not bucket or "/" in bucket:
            raise UserError(f"--artifacts: got {text!r}; allowed: s3://BUCKET (a bucket name, no key prefix) or a folder")
        try:
            from optuna.artifacts import Boto3ArtifactStore

            return Boto3ArtifactStore(bucket, client=s3_client())
        except ImportError:
            raise UserError("--artifacts s3://...: needs boto3: pip install 'autoq[s3]'") from None
    folder = Path(path).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--artifacts: cannot create {str(folder)!r}: {exc.strerror or exc}") from None
    return FileSystemArtifactStore(str(folder))


def upload_trial_model(study, trial, weights_path: str | None, store_dir: str | None) -> dict | None:
    """Upload the trial's model file; records and returns its ``model_artifact`` attr."""
    if not store_dir or not weights_path or not Path(weights_path).is_file():
        return None
    from optuna.artifacts import upload_artifact

    artifact_id = upload_artifact(artifact_store=open_store(store_dir), file_path=str(weights_path),
                                  study_or_trial=trial, mimetype="application/octet-stream")
    ref = {"id": artifact_id, "store": store_name(store_dir), "bytes": Path(weights_path).stat().st_size}
    trial.set_user_attr(MODEL_ATTR, ref)
    return ref


def model_file(attrs: dict, into: Path, store_dir: str | None = None) -> str:
    """A local path of a trial's model: downloaded into ``into`` from its artifact, else the
    stored ``weights_path``. UserError naming both places when neither has it."""
    from optuna.artifacts import download_artifact
    from optuna.artifacts.exceptions import ArtifactNotFound

    ref = attrs.get(MODEL_ATTR)
    if ref:
        folder = find_store(ref, store_dir)
        target = Path(into) / "model.keras"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            download_artifact(artifact_store=open_store(folder), file_path=str(target), artifact_id=ref["id"])
            return str(target)
        except (ArtifactNotFound, OSError) as exc:
            where = f"artifact {ref['id']} in {folder!r} ({type(exc).__name__})"
    else:
        where = "no model artifact recorded (a run older than the artifact store)"
    path = attrs.get("weights_path")
    if path and Path(path).is_file():
        return path
    raise UserError(f"the trained model is not available: {where}; weights_path {path!r} does not exist here "
                    "(was the run folder moved? pass --artifacts DIR: the artifact folder the search used)")


def find_store(ref: dict, store_dir: str | None) -> str:
    """The folder holding artifact ``ref``: ``store_dir`` (--artifacts) if it has it, else
    the folder it was uploaded to (the same path on a shared disk)."""
    for folder in (store_dir, ref["store"]):
        if folder and str(folder).startswith(S3_SCHEME):   # a bucket: the same name everywhere
            return str(folder)
        if folder and (Path(folder) / ref["id"]).exists():
            return str(folder)
    return str(store_dir or ref["store"])


class BaselineShare:
    """The float baseline of a shared study, trained by one worker (module docstring).

    ``fetch(key, folder)`` -> True when the baseline was installed into ``folder`` from the
    store (then train_baseline reads it as a cache hit), False when this process must train
    it and then ``publish`` it. ``event`` says which happened, for the result line.
    ``study`` is a StoredStudy (autoq.search.trials): the claim studies live on its storage.
    """

    def __init__(self, study, store_dir: str | Path, worker_id: str, live: callable, poll: float = 2.0):
        self.study, self.store_dir, self.worker_id = study, str(store_dir), worker_id
        self.live, self.poll = live, poll      # live() -> ids of live workers
        self.event = ""

    def _attr(self, key: str) -> str:
        return f"baseline:{key[:16]}"

    def fetch(self, key: str, folder: Path) -> bool:
        import optuna

        claim_name = f"{self.study.study_name}:{self._attr(key)}"
        try:
            claim = optuna.create_study(study_name=claim_name, storage=self.study.storage)
            claim.set_user_attr("worker", self.worker_id)
            self.event = "trained here (first worker), uploaded for the others"
            log.info("float baseline %s: training it (first worker of study %s)", key[:16], self.study.study_name)
            return False
        except optuna.exceptions.DuplicatedStudyError:
            claim = optuna.load_study(study_name=claim_name, storage=self.study.storage)
        while True:
            ref = self.study.user_attrs.get(self._attr(key))   # read from the storage on every access
            if ref:
                self._install(ref, folder)
                self.event = f"downloaded from the artifact store (trained by worker {ref.get('worker')})"
                log.info("float baseline %s: %s", key[:16], self.event)
                return True
            holder = claim.user_attrs.get("worker")
            if holder is not None and holder not in self.live():
                self.event = f"trained here: worker {holder} claimed it and stopped"
                log.warning("float baseline %s: %s", key[:16], self.event)
                return False
            time.sleep(self.poll)

    def publish(self, key: str, folder: Path) -> None:
        from optuna.artifacts import upload_artifact

        with tempfile.TemporaryDirectory(prefix="autoq-baseline-") as tmp:
            tar_path = Path(tmp) / "baseline.tar"
            with tarfile.open(tar_path, "w") as tar:
                for name in BASELINE_FILES:
                    tar.add(Path(folder) / name, arcname=name)
            artifact_id = upload_artifact(artifact_store=open_store(self.store_dir), file_path=str(tar_path),
                                          study_or_trial=self.study)
        self.study.set_user_attr(self._attr(key), {"id": artifact_id, "store": store_name(self.store_dir),
                                                  "worker": self.worker_id})

    def _install(self, ref: dict, folder: Path) -> None:
        """Unpack the tar into ``folder`` with result.json's paths pointing there (atomic)."""
        folder = Path(folder)
        if (folder / "result.json").is_file():
            return
        store = open_store(find_store(ref, self.store_dir))
        with store.open_reader(ref["id"]) as reader:
            with tarfile.open(fileobj=io.BytesIO(reader.read()), mode="r") as tar:
                files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()
                         if m.name in BASELINE_FILES and m.isfile()}   # no links, no other paths
        result = json.loads(files["result.json"])
        result.update(folder=str(folder.resolve()), model_path=str((folder / "model.keras").resolve()),
                      weights_path=str((folder / "model.weights.h5").resolve()))
        files["result.json"] = json.dumps(result, indent=2).encode()
        install_folder(folder, files)   # another process on this machine may have installed it meanwhile
