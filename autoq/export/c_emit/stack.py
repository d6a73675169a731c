"""Stack estimate of the Cortex-M4 build from gcc's -fstack-usage files (``*.su``)."""
from __future__ import annotations

ENTRY = "autoq_model_run"


def linked_functions(nm_output: str) -> set[str]:
    """The text symbols (``t``/``T``) in ``nm``'s listing of the linked ELF."""
    rows = [line.split() for line in nm_output.splitlines()]
    return {parts[-1] for parts in rows if len(parts) == 3 and parts[1] in "tT"}


def frames(su_texts, linked: set[str]) -> dict[str, int]:
    """{function: largest frame in bytes} of the linked functions in the ``.su`` texts."""
    found: dict[str, int] = {}
    for text in su_texts:
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1].isdigit():
                name = parts[0].rsplit(":", 1)[-1]
                if name in linked:
                    found[name] = max(found.get(name, 0), int(parts[1]))
    return found


def stack_estimate(su_texts, linked: set[str]) -> int | None:
    """autoq_model_run's frame + the two largest frames of the other functions linked in
    (the call depth is run -> kernel -> core); an estimate. None without the entry's frame."""
    sizes = frames(su_texts, linked)
    if ENTRY not in sizes:
        return None
    others = sorted((v for k, v in sizes.items() if k != ENTRY), reverse=True)
    return sizes[ENTRY] + sum(others[:2])
