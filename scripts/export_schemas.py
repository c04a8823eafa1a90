"""Write the published JSON Schemas (commands, outcomes, events) into schemas/json/."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import TypeAdapter

from schemas.commands import CommandEnvelope, Outcome
from schemas.events import json_schemas

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "json"


def all_schemas() -> dict[str, dict[str, object]]:
    out = dict(json_schemas())
    out["command-envelope.json"] = TypeAdapter(CommandEnvelope).json_schema()
    out["outcome.json"] = Outcome.model_json_schema()
    return out


def main() -> int:
    TARGET.mkdir(parents=True, exist_ok=True)
    for name, schema in sorted(all_schemas().items()):
        (TARGET / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(all_schemas())} schemas to {TARGET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
