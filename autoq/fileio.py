"""Reading user files safely and writing autoq's files atomically.

Reading: every user file (search space, profile, QuantConfig, measurement CSV, LayerPlan) goes
through :func:`read_text`, then :func:`load_yaml` or :func:`load_json`. Any failure is a
:class:`~autoq.errors.UserError` naming the file: missing, a folder, too big, not UTF-8, not
valid YAML/JSON, YAML whose aliases expand beyond :data:`MAX_YAML_NODES` values (an alias
bomb turns a few hundred bytes into gigabytes), nesting deeper than :data:`MAX_DEPTH`,
NaN/Infinity in JSON.

Writing: :func:`atomic_write_bytes` / :func:`atomic_write_text` write a temporary file in the
target's folder, fsync it and ``os.replace`` it over the target, so a crash or a kill leaves
either the old file or the new one, never a half-written one. The target's folder must exist
(a missing folder is a UserError, not a silent ``mkdir`` of a typo).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from autoq.errors import UserError

MAX_TEXT_BYTES = 4 << 20      # spaces, profiles, configs, plans: a few KB in practice
MAX_CSV_BYTES = 32 << 20      # measurement and instruction-count CSVs
MAX_DEPTH = 32                # nesting of mappings/lists in YAML and JSON
MAX_YAML_NODES = 50_000       # values of a YAML document after expanding aliases
MAX_FREE_TEXT = 2000          # characters of a free-text key (description, notes, source)


def read_text(path: str | Path, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path``; a UserError names the file and what went wrong."""
    p = Path(path)
    try:
        if not p.exists():
            raise UserError(f"{p}: {what} not found")
        if p.is_dir():
            raise UserError(f"{p}: is a folder; expected a {what}")
        size = p.stat().st_size
        if size > max_bytes:
            raise UserError(f"{p}: {size:,} bytes; allowed: a {what} of at most {max_bytes:,} bytes")
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: byte {exc.start} is not UTF-8 ({data[exc.start:exc.start + 1]!r}); "
                        f"allowed: a UTF-8 text {what}") from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_yaml(text: str, source: str, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_YAML_NODES) -> Any:
    """yaml.safe_load with the expansion capped: the composed node graph is walked as the
    constructed value would be (aliases expanded) and refused beyond ``max_nodes`` values or
    ``max_depth`` levels before any Python object is built (an alias bomb of a few hundred
    bytes would otherwise expand into gigabytes; a recursive alias exceeds the depth)."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_nodes(node, source, max_depth, max_nodes)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise UserError(f"{source}: not valid YAML: {at}{_one_line(problem)}") from None
    except UserError:
        raise
    except (RecursionError, ValueError, OverflowError, TypeError) as exc:  # e.g. a 5,000-digit integer
        raise UserError(f"{source}: not valid YAML: {_one_line(exc)[:200]}") from None
    finally:
        loader.dispose()


def _check_yaml_nodes(root, source: str, max_depth: int, max_nodes: int) -> None:
    import yaml

    stack, count = [(root, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_nodes:
            raise UserError(f"{source}: expands to more than {max_nodes:,} values (YAML aliases *name repeat "
                            f"their anchor's value); allowed: at most {max_nodes:,}")
        if depth > max_depth:
            line = node.start_mark.line + 1 if node.start_mark else "?"
            raise UserError(f"{source}: line {line}: nested deeper than {max_depth} levels; allowed: at most "
                            f"{max_depth}")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed (numbers must be finite)")


def load_json(text: str, source: str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads with NaN/Infinity refused, huge integers and deep nesting as UserErrors."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}: not valid JSON: {exc}") from None
    except RecursionError:
        raise UserError(f"{source}: JSON nested too deeply; allowed: at most {max_depth} levels") from None
    except ValueError as exc:  # NaN/Infinity, integers beyond Python's digit limit
        raise UserError(f"{source}: not valid JSON: {_one_line(exc)}") from None
    check_depth(data, source, max_depth)
    return data


def check_depth(data: Any, source: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse containers nested deeper than ``max_depth`` (iteratively: no RecursionError)."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list, tuple)):
            if depth >= max_depth:
                raise UserError(f"{source}: nested deeper than {max_depth} levels; allowed: at most {max_depth}")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in children)


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    return load_yaml(read_text(path, what), str(path))


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    return load_json(read_text(path, what), str(path))


def free_text(value: Any, source: str | None, key: str, max_len: int = MAX_FREE_TEXT) -> str:
    """A free-text field: a string of at most ``max_len`` printable characters (newlines and
    tabs allowed); ANSI escapes and other control characters are refused."""
    prefix = f"{source}: {key}" if source else key
    if not isinstance(value, str):
        raise UserError(f"{prefix}: got {_short(value)}; allowed: a string")
    if len(value) > max_len:
        raise UserError(f"{prefix}: {len(value):,} characters; allowed: at most {max_len:,}")
    bad = next((c for c in value if not (c.isprintable() or c in "\n\t")), None)
    if bad is not None:
        raise UserError(f"{prefix}: contains the control character {bad!r}; allowed: printable text")
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def finite_number(value: Any) -> bool:
    """A real int/float (not bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- writing --------------------------------------------------------------------------------


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder + os.replace."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{path}: cannot write: the folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise UserError(f"{path}: cannot write: it is a folder; allowed: a file path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UserError(f"{path}: cannot write into {str(folder)!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise UserError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def install_folder(folder: str | Path, files: dict[str, bytes]) -> bool:
    """Create ``folder`` holding ``files`` (name -> bytes) atomically: written into a temporary
    sibling, then renamed. False when another process renamed its copy first (that one stays:
    concurrent installers of one cache entry keep one copy)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    try:
        os.rename(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    return True
