"""Validate manifest.yml against Slack's app manifest JSON Schema.

Usage: python tools/validate_manifest.py [SCHEMA_DIR] [MANIFEST]

SCHEMA_DIR defaults to ../shared/reference/slack-manifest-schema (relative to the repository
root); MANIFEST defaults to manifest.yml at the repository root. Prints "manifest OK" and exits
0, or prints every error (with its path in the manifest) and exits 1.

Which schema file applies. The directory holds three files, all JSON Schema Draft 7:

- manifest.schema.json: the entry point (its ``$id`` is
  https://github.com/slackapi/manifest-schema/blob/main/manifest.schema.json). It holds no rules
  of its own, only a ``oneOf`` whose branches test ``_metadata.major_version`` (1, 2, absent,
  or no ``_metadata`` at all) and ``$ref`` a versioned schema by a raw.githubusercontent.com URL.
- manifest.schema.1.0.0.json and manifest.schema.2.0.0.json: the rules for manifest versions
  1 and 2 (no ``$id``; the entry point names them by URL).

So the entry point is found by content (a top-level ``oneOf`` of branches that ``$ref`` other
files, or an ``$id`` ending in /manifest.schema.json), and each ``$ref`` URL is served from the
local file with the same basename (nothing is fetched from the network). The manifest is then
validated twice: against the entry point, exactly as Slack's tooling would, and against the
versioned schema of the branch whose ``_metadata`` condition matches, because errors from a
failed ``oneOf`` only say "not valid under any of the given schemas" while the versioned schema
says which field is wrong. Without an entry point in the directory, the versioned file is picked
by ``_metadata.major_version`` (default 1, as Slack does).

The versioned schemas spell one constraint as ``regex`` (background_color), which is not a
JSON Schema keyword and would be ignored; it is checked here with the semantics of ``pattern``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonschema import validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMA_DIR = REPO_ROOT.parent / "shared" / "reference" / "slack-manifest-schema"
DEFAULT_MANIFEST = REPO_ROOT / "manifest.yml"


def _validator_class(schema: dict[str, Any]) -> Any:
    base = validators.validator_for(schema, default=validators.Draft7Validator)
    return validators.extend(base, {"regex": base.VALIDATORS["pattern"]})


def _branch_refs(schema: dict[str, Any]) -> list[tuple[list[dict[str, Any]], str]]:
    """(conditions, $ref URL) for each oneOf branch of an entry-point schema."""
    branches = []
    for branch in schema.get("oneOf", []):
        parts = branch.get("allOf", [branch])
        refs = [p["$ref"] for p in parts if isinstance(p, dict) and "$ref" in p]
        conditions = [p for p in parts if isinstance(p, dict) and "$ref" not in p]
        if len(refs) == 1:
            branches.append((conditions, refs[0]))
    return branches


def _load_schemas(schema_dir: Path) -> dict[str, dict[str, Any]]:
    files = sorted(schema_dir.glob("*.json"))
    if not files:
        raise SystemExit(f"no *.json schema files in {schema_dir}")
    return {f.name: json.loads(f.read_text(encoding="utf-8")) for f in files}


def _entry_point(schemas: dict[str, dict[str, Any]]) -> str | None:
    for name, schema in schemas.items():
        refs = [url for _, url in _branch_refs(schema)]
        if refs and all(url.rsplit("/", 1)[-1] in schemas for url in refs):
            return name
    for name, schema in schemas.items():
        if str(schema.get("$id", "")).endswith("/manifest.schema.json"):
            return name
    return None


def _errors(schema: dict[str, Any], manifest: Any, registry: Registry) -> list[ValidationError]:
    cls = _validator_class(schema)
    validator = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
    return sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))


def validate(manifest: Any, schema_dir: Path) -> tuple[list[str], list[ValidationError]]:
    """Return (names of the schema files used, errors)."""
    schemas = _load_schemas(schema_dir)
    entry = _entry_point(schemas)
    if entry is None:
        major = (manifest.get("_metadata") or {}).get("major_version", 1)
        name = f"manifest.schema.{major}.0.0.json"
        if name not in schemas:
            raise SystemExit(f"no schema for manifest major_version {major} in {schema_dir}")
        return [name], _errors(schemas[name], manifest, Registry())

    root = schemas[entry]
    branches = _branch_refs(root)
    registry = Registry().with_resources(
        (url, Resource.from_contents(schemas[url.rsplit("/", 1)[-1]], DRAFT7))
        for _, url in branches
    )
    used = [entry]
    errors = _errors(root, manifest, registry)
    for conditions, url in branches:
        if all(_validator_class(c)(c).is_valid(manifest) for c in conditions):
            name = url.rsplit("/", 1)[-1]
            used.append(name)
            specific = _errors(schemas[name], manifest, registry)
            # Prefer the versioned schema's precise errors over a bare oneOf failure.
            errors = specific or errors
            break
    return used, errors


def main(argv: list[str]) -> int:
    schema_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_SCHEMA_DIR
    manifest_path = Path(argv[2]) if len(argv) > 2 else DEFAULT_MANIFEST
    if not schema_dir.is_dir():
        print(f"schema directory not found: {schema_dir}", file=sys.stderr)
        return 1
    try:
        manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"cannot read {manifest_path}: {exc}", file=sys.stderr)
        return 1
    if not isinstance(manifest, dict):
        print(f"{manifest_path}: expected a mapping at the top level", file=sys.stderr)
        return 1

    used, errors = validate(manifest, schema_dir)
    if errors:
        for error in errors:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            message = error.message
            if error.validator in ("oneOf", "anyOf"):
                # The default message repeats the whole instance; say what failed instead.
                message = f"matches none of the {error.validator} alternatives"
                if not error.absolute_path:
                    message += " (is _metadata.major_version 1 or 2?)"
            print(f"{manifest_path.name}: {where}: {message}", file=sys.stderr)
        print(f"manifest INVALID ({len(errors)} error(s); schema: {', '.join(used)})")
        return 1
    print(f"manifest OK ({', '.join(used)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
