"""Precision and recall of the blame and excuse check on the labelled table, per language.

    .venv/bin/python bench/blame_check.py [--table tests/data/blame_table.csv] [--misses]

The table (lang, label, category, text) holds blaming, excusing and denying sentences
(label 1) and neutral sentences and quoted client words (label 0). A sentence counts as flagged
when the check finds anything in it. Target (issue 5): precision and recall >= 0.9 per language.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.workflow.blame import check  # noqa: E402

TABLE = ROOT / "tests" / "data" / "blame_table.csv"


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def load(path: Path = TABLE) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def score(rows: list[dict[str, str]]) -> tuple[dict[str, Score], list[tuple[str, dict[str, str]]]]:
    scores: dict[str, Score] = {}
    misses: list[tuple[str, dict[str, str]]] = []
    for row in rows:
        s = scores.setdefault(row["lang"], Score())
        flagged = bool(check(row["text"]))
        wanted = row["label"] == "1"
        if flagged and wanted:
            s.tp += 1
        elif flagged:
            s.fp += 1
            misses.append(("false positive", row))
        elif wanted:
            s.fn += 1
            misses.append(("missed", row))
        else:
            s.tn += 1
    return scores, misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--misses", action="store_true", help="list every wrong answer")
    args = parser.parse_args()
    rows = load(args.table)
    scores, misses = score(rows)
    print(f"blame check on {args.table.name}: {len(rows)} sentences")
    head = ("lang", "n", "pos", "tp", "fp", "fn", "precision", "recall")
    print(
        f"{head[0]:<5} " + " ".join(f"{h:>4}" for h in head[1:6]) + f" {head[6]:>10} {head[7]:>8}"
    )
    ok = True
    for lang in sorted(scores):
        s = scores[lang]
        print(
            f"{lang:<5} {s.total:>4} {s.tp + s.fn:>4} {s.tp:>4} {s.fp:>4} {s.fn:>4} "
            f"{s.precision:>10.3f} {s.recall:>8.3f}"
        )
        ok = ok and s.precision >= 0.9 and s.recall >= 0.9
    if args.misses:
        for what, row in misses:
            print(f"  {what}: [{row['lang']}/{row['category']}] {row['text']}")
    print("target (precision and recall >= 0.9 per language):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
