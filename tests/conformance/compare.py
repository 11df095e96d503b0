"""Compares a kosoku run's results with the committed baseline.

Reads the run's ``index.json`` (Autobahn's report index: agent -> case id ->
behavior, behaviorClose, remoteCloseCode, duration, report file) and the
baseline ``expected.json`` (case id -> behavior, behaviorClose,
remoteCloseCode). Only the cases of the selected sections count: a case of
those sections that changes in any of the three fields, either way, is a
deviation, and so is one in the baseline that did not run, or one that ran
and is not in the baseline. Durations are never compared.

Prints every deviation, the non-OK cases the baseline expects, a summary
line (cases by result: the behavior, or FAILED when the close failed), then ``conformance: N passed, N failed`` (cases matching the baseline,
deviations). Exits 1 on any deviation. With ``--update`` it writes the run's
results for the selected sections into the baseline instead (other
sections' entries are kept) and exits 0.

Usage: compare.py INDEX_JSON EXPECTED_JSON SECTIONS [--update]
       (SECTIONS: comma-separated case-id heads, e.g. 1,2,3,4,5,6,7,10)
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

FIELDS = ("behavior", "behaviorClose", "remoteCloseCode")
LABELS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
# Close behaviors that fail a case whatever its message behavior.
CLOSE_FAILURES = ("FAILED", "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT")


def verdict(result: dict) -> str:
    """A case's one-word result: its behavior, or FAILED when the closing
    handshake failed (as kosoku's `passed` would have it)."""
    if result.get("behaviorClose") in CLOSE_FAILURES:
        return "FAILED"
    return str(result.get("behavior"))


def sort_key(case_id: str) -> list[int]:
    return [int(part) for part in case_id.split(".")]


def show(result: dict) -> str:
    return "/".join(str(result.get(field)) for field in FIELDS)


def describe_non_ok(baseline: dict[str, dict]) -> str:
    """The baseline's non-OK cases by result, a sub-section whose cases all
    share one result written once (`12.1.*`)."""
    by_sub: dict[str, list[str]] = {}
    for case_id in sorted(baseline, key=sort_key):
        by_sub.setdefault(".".join(case_id.split(".")[:2]), []).append(case_id)
    groups: dict[str, list[str]] = {}
    counts: Counter = Counter()
    for sub, ids in by_sub.items():
        verdicts = {verdict(baseline[i]) for i in ids}
        if len(ids) > 1 and len(verdicts) == 1 and verdicts != {"OK"}:
            (v,) = verdicts
            groups.setdefault(v, []).append(f"{sub}.*")
            counts[v] += len(ids)
            continue
        for i in ids:
            v = verdict(baseline[i])
            if v != "OK":
                groups.setdefault(v, []).append(i)
                counts[v] += 1
    return "; ".join(
        f"{v} ({counts[v]}): {' '.join(ids)}" for v, ids in groups.items()
    )


def load_run(index_path: Path) -> dict[str, dict]:
    """The run's results, case id -> the compared fields."""
    if not index_path.is_file():
        return {}
    index = json.loads(index_path.read_text())
    run: dict[str, dict] = {}
    for cases in index.values():  # one agent: the echo server
        for case_id, entry in cases.items():
            run[case_id] = {field: entry.get(field) for field in FIELDS}
    return run


def main(argv: list[str]) -> int:
    update = "--update" in argv
    args = [a for a in argv if a != "--update"]
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    index_path, expected_path = Path(args[0]), Path(args[1])
    sections = {s for s in args[2].split(",") if s}

    def selected(case_id: str) -> bool:
        return case_id.split(".")[0] in sections

    run = {k: v for k, v in load_run(index_path).items() if selected(k)}
    baseline_all = (
        json.loads(expected_path.read_text()) if expected_path.is_file() else {}
    )
    baseline = {k: v for k, v in baseline_all.items() if selected(k)}

    if update:
        if not run:
            print(f"conformance: no results in {index_path}; baseline not updated")
            return 1
        merged = {k: v for k, v in baseline_all.items() if not selected(k)}
        merged.update(run)
        ordered = dict(sorted(merged.items(), key=lambda kv: sort_key(kv[0])))
        # One case a line, so a change in the baseline reads as one line.
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in ordered.items()]
        expected_path.write_text("{\n" + ",\n".join(lines) + "\n}\n")
        print(f"conformance: wrote {len(run)} cases to {expected_path}")
        return 0

    deviations = []
    for case_id in sorted(set(baseline) | set(run), key=sort_key):
        want, got = baseline.get(case_id), run.get(case_id)
        if got is None:
            deviations.append(f"MISSING {case_id}: expected {show(want)}, did not run")
        elif want is None:
            deviations.append(f"NEW {case_id}: not in the baseline, got {show(got)}")
        elif want != got:
            deviations.append(f"CHANGED {case_id}: expected {show(want)}, got {show(got)}")
    for line in deviations:
        print(f"conformance: {line}")

    expected_non_ok = describe_non_ok(baseline)
    if expected_non_ok:
        print(
            "conformance: not OK, as the baseline expects (docs/CONFORMANCE.md says why): "
            + expected_non_ok
        )

    counts = Counter(verdict(v) for v in run.values())
    parts = [f"{counts.pop(label, 0)} {label}" for label in LABELS]
    parts += [f"{n} {label}" for label, n in sorted(counts.items())]
    print(
        f"conformance: {len(run)} cases, {', '.join(parts)}; "
        f"{len(deviations)} deviation{'' if len(deviations) == 1 else 's'}"
    )
    matched = len(set(baseline) | set(run)) - len(deviations)
    print(f"conformance: {matched} passed, {len(deviations)} failed")
    return 1 if deviations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
