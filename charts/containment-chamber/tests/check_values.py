#!/usr/bin/env python3
"""Validate values files against the chart's values.schema.json the way helm does: each file
deep-merged over values.yaml, then checked with JSON Schema. Prints one JSON line per file:
{"file": ..., "valid": bool, "errors": [...]}. Exit 0 when every file could be checked."""
import json
import pathlib
import sys

import jsonschema
import yaml

chart = pathlib.Path(__file__).resolve().parent.parent


def merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return over


schema = json.loads((chart / "values.schema.json").read_text())
defaults = yaml.safe_load((chart / "values.yaml").read_text())
validator = jsonschema.Draft7Validator(schema)
for name in sys.argv[1:]:
    values = defaults if name == "-" else merge(defaults, yaml.safe_load(pathlib.Path(name).read_text()) or {})
    errors = sorted(e.message for e in validator.iter_errors(values))
    print(json.dumps({"file": name, "valid": not errors, "errors": errors}))
