"""The blame and excuse check: shifting blame, excuses and denials in report and letter text.

The rules are data (`bot/data/blame_rules.json`), not code: each is a regular expression with
a kind (blame, excuse, denial) and, optionally, `unless_self` — skip the match when the clause
before it names the writer or the company, so owning a mistake ("私が間違えました", "we are to
blame") never triggers. Text inside quotation marks (「…」『…』"…"“…”) is the client's or
someone else's words and is blanked out before any rule runs.

`BLAME_POLICY` decides what a finding does: `block` (a field error with the reason and a
suggested rewording), `warn` (accepted, the reporter gets a note and the manager a flag) or
`off`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "blame_rules.json"

BLOCK = "block"
WARN = "warn"
OFF = "off"


@dataclass(frozen=True)
class Rule:
    id: str
    lang: str
    kind: str
    regex: re.Pattern[str]
    unless_self: bool


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    quotes: re.Pattern[str]
    breaks: str
    self_words: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Finding:
    """One phrase that reads as blame, an excuse or a denial."""

    rule: str
    kind: str
    match: str
    start: int

    def as_flag(self, field: str) -> dict[str, Any]:
        return {"field": field, "rule": self.rule, "kind": self.kind, "match": self.match}


def load_rules(path: Path = RULES_FILE) -> RuleSet:
    data = json.loads(path.read_text(encoding="utf-8"))
    pairs = [pair for pair in data["quotes"] if len(pair) == 2]
    quotes = re.compile(
        "|".join(f"{re.escape(a)}[^{re.escape(b)}]*{re.escape(b)}" for a, b in pairs)
    )
    rules = []
    for raw in data["rules"]:
        flags = re.IGNORECASE if raw.get("ignore_case", raw["lang"] == "en") else 0
        rules.append(
            Rule(
                id=raw["id"],
                lang=raw["lang"],
                kind=raw["kind"],
                regex=re.compile(raw["pattern"], flags),
                unless_self=bool(raw.get("unless_self", False)),
            )
        )
    self_words = {lang: tuple(words) for lang, words in data["self"].items()}
    return RuleSet(tuple(rules), quotes, data["clause_breaks"], self_words)


@cache
def rules() -> RuleSet:
    return load_rules()


def without_quotes(text: str, ruleset: RuleSet | None = None) -> str:
    """Blank out quoted words (same length, so positions still point into the original)."""
    ruleset = ruleset or rules()
    return ruleset.quotes.sub(lambda m: " " * len(m.group(0)), text)


def _clause_before(text: str, end: int, breaks: str) -> str:
    start = max((text.rfind(ch, 0, end) for ch in breaks), default=-1)
    return text[start + 1 : end]


def _names_self(clause: str, lang: str, ruleset: RuleSet) -> bool:
    words = ruleset.self_words.get(lang, ())
    if lang == "en":
        tokens = set(re.findall(r"[a-z]+", clause.lower()))
        return any(w in tokens for w in words)
    return any(w in clause for w in words)


def check(text: str, ruleset: RuleSet | None = None) -> list[Finding]:
    """Every blame, excuse or denial phrase in `text` (both languages' rules run)."""
    ruleset = ruleset or rules()
    if not text or not text.strip():
        return []
    plain = without_quotes(text, ruleset)
    findings: list[Finding] = []
    for rule in ruleset.rules:
        for m in rule.regex.finditer(plain):
            if rule.unless_self and _names_self(
                _clause_before(plain, m.start(), ruleset.breaks), rule.lang, ruleset
            ):
                continue
            findings.append(Finding(rule.id, rule.kind, text[m.start() : m.end()], m.start()))
            break  # one finding per rule and text is enough to explain it
    findings.sort(key=lambda f: f.start)
    return findings


def check_fields(fields: dict[str, str]) -> dict[str, list[Finding]]:
    """Findings per field name (fields without any are left out)."""
    found = {name: check(value) for name, value in fields.items()}
    return {name: f for name, f in found.items() if f}


def flags(fields: dict[str, str]) -> list[dict[str, Any]]:
    """Findings as JSON-ready flags, stored on report versions and letter drafts."""
    return [f.as_flag(name) for name, fs in check_fields(fields).items() for f in fs]


def field_errors(fields: dict[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Under `block`: one error per field, naming the first phrase and suggesting a rewording."""
    errors: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, found in check_fields(fields).items():
        first = found[0]
        errors[name] = (f"blame.block.{first.kind}", {"phrase": first.match[:80]})
    return errors
