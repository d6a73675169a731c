"""Check (or regenerate) the README's command outputs against what the commands print today.

Every ```text block of README.md that holds `$ command` lines is a transcript: the lines after
a command, up to the next `$ `, are its documented output. This script runs each command in a
work folder (a `cd DIR && ...` prefix moves into DIR for the rest of the transcript) and
compares, after normalising durations (`110.1 s` -> `<t> s`) and printing paths inside the
work folder relative to it. In the documented output, a line
`...` stands for any number of lines and a line ending in `...` for any line with that prefix.

    python benchmarks/check_readme.py --workdir /tmp/walk --run      # run the walk-through first
    python benchmarks/check_readme.py --workdir /tmp/walk            # check against that folder
    python benchmarks/check_readme.py --workdir /tmp/walk --update   # write today's outputs back

--run executes the quick-start command (the search) in the work folder before the others; the
search itself is compared only by its first and last lines (the trials in between depend on the
machine's timing and CPU); with --update its whole output is written back, so the documented
trials are those of the fronts after it. Exit code 1 when an output differs (each difference is printed).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DURATION = re.compile(r"\b\d+(\.\d+)? s\b")


@dataclass
class Transcript:
    command: str
    expected: list[str]
    start: int          # README line index of the `$ command` line
    end: int            # index after the last output line


def transcripts(lines: list[str]) -> list[Transcript]:
    out, in_text, current = [], False, None
    for i, line in enumerate(lines):
        if line.startswith("```"):
            if current is not None:
                current.end = i
                out.append(current)
                current = None
            in_text = line.strip() == "```text" and not in_text
            continue
        if not in_text:
            continue
        if line.startswith("$ "):
            if current is not None:
                current.end = i
                out.append(current)
            current = Transcript(line[2:], [], i, i + 1)
        elif current is not None:
            current.expected.append(line)
    return out


def normalise(line: str) -> str:
    return DURATION.sub("<t> s", line.rstrip())


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line comparison with `...` wildcards (module docstring)."""
    if not expected:
        return not actual
    head, rest = normalise(expected[0]), expected[1:]
    if head == "...":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    if not actual:
        return False
    line = normalise(actual[0])
    ok = line.startswith(head[:-3].rstrip()) if head.endswith("...") else line == head
    return ok and matches(rest, actual[1:])


def run(command: str, cwd: Path, workdir: Path) -> tuple[list[str], Path]:
    """Run one documented command; returns its output lines (paths inside the work folder made
    relative to it, as the README shows them) and the folder for the next command."""
    move = re.match(r"cd (\S+) && (.*)", command)
    if move:
        cwd = cwd / move.group(1)
        command = move.group(2)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "COLUMNS": "200", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=3600)
    text = (proc.stdout + proc.stderr).replace(f"{workdir}/", "")
    return [line.rstrip() for line in text.rstrip("\n").splitlines()], cwd


def _search_lines(lines: list[str]) -> list[str]:
    return lines[:1] + [line for line in lines if line.startswith("search finished")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--run", action="store_true", help="run the search of the walk-through first")
    ap.add_argument("--update", action="store_true", help="write the outputs into the README")
    args = ap.parse_args(argv)
    lines = args.readme.read_text().splitlines()
    args.workdir.mkdir(parents=True, exist_ok=True)
    cwd, failures, replaced = args.workdir.resolve(), 0, {}
    for t in transcripts(lines):
        is_search = t.command.startswith("autoq search")
        if is_search and not args.run:
            continue
        actual, cwd = run(t.command, cwd, args.workdir.resolve())
        expected, full = t.expected, actual
        if is_search:   # its header and result line: the trials' accuracies vary with the machine
            expected, actual = _search_lines(expected), _search_lines(actual)
        if is_search and args.update:   # its trials go with the fronts printed after it
            replaced[t.start] = (t.end, full)
        if matches(expected, actual):
            print(f"ok    $ {t.command}")
            continue
        failures += 1
        print(f"DIFF  $ {t.command}")
        for kind, block in (("documented", expected), ("today", actual)):
            print(f"  --- {kind}")
            print("\n".join("  " + line for line in block))
        replaced[t.start] = (t.end, full)
    if args.update and replaced:
        for start in sorted(replaced, reverse=True):
            end, actual = replaced[start]
            lines[start + 1:end] = actual
        args.readme.write_text("\n".join(lines) + "\n")
        print(f"updated {len(replaced)} transcripts in {args.readme}")
    return 1 if failures and not args.update else 0


if __name__ == "__main__":
    sys.exit(main())
