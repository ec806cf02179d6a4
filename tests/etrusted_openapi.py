"""The eTrusted OpenAPI files, loaded once, their known defects repaired, as JSON Schemas.

The YAML files are third-party copies (see ``sandbox/openapi/README.md`` and the shared
``SOURCE.md``). Each known defect is repaired below one by one and asserted to still be there,
so that a corrected upstream file shows up as a failing test instead of a silently skipped
check. Both the sandbox's answers and the kit's request bodies are checked against these.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SHARED_DIR = Path(__file__).parents[1].parent / "shared" / "etrusted-openapi"
LOCAL_DIR = Path(__file__).parent / "sandbox" / "openapi"
SPEC_DIR = SHARED_DIR if SHARED_DIR.is_dir() else LOCAL_DIR

# From SOURCE.md; the copies in sandbox/openapi/ must stay byte-identical.
SHA256 = {
    f"{name}.public.yaml": digest
    for name, digest in (
        ("accounts", "12c8ff602e2a4a937edb88455f5b95f68b81bfda6897bd828872f4add8b3578b"),
        ("authentication", "a0c14d23e9f87c04e1d84eaa1c170236064ba5c09bfd5e87fff1dde2234d154b"),
        ("events-types", "dffc2343c1262389a3526676240b40bb96c3883768170e6eb0002dcb3f7b1dd7"),
        ("events", "2417c96c85834bf07fb64625260300a2e8efa9938eac62f2a61345b0b4678438"),
        ("invites-settings", "60d24b40164df939748bae20fe81f2a0620262010e1cfbf65b259b7c5eda82bf"),
        ("invites", "ffe9a73c81ecf3728aa88a58c99a848ffd900fcf26cfd235165c6c161f68783c"),
    )
}


def _load() -> dict[str, dict[str, Any]]:
    specs = {}
    for name in SHA256:
        spec = yaml.safe_load((SPEC_DIR / name).read_text(encoding="utf-8"))
        for item in spec["paths"].values():
            for operation in item.values():
                # Defect: some response codes are YAML integers (SOURCE.md).
                operation["responses"] = {str(k): v for k, v in operation["responses"].items()}
        specs[name.removesuffix(".public.yaml")] = spec
    _repair_known_defects(specs)
    return specs


def _repair_known_defects(specs: dict[str, dict[str, Any]]) -> None:
    schemas = specs["events"]["components"]["schemas"]
    # Defect: EventRequest.required names ``id`` and ``accountRef``, which are not properties
    # of the request (no official sample sends them; etrusted-api.md §5).
    required = schemas["EventRequest"]["required"]
    assert {"id", "accountRef"} <= set(required)
    schemas["EventRequest"]["required"] = [r for r in required if r not in {"id", "accountRef"}]
    # Defect: EventGetResponse.tracking requires ``id`` but defines only client and medium.
    tracking = schemas["EventGetResponse"]["properties"]["tracking"]
    assert tracking["required"] == ["id"]
    assert "id" not in tracking["properties"]
    del tracking["required"]
    # Defect: invite-settings puts the time-of-day regex in ``format`` instead of ``pattern``,
    # and spells date-time as ``datetime``. Both are moved where a validator will check them.
    found = {"regex": 0, "datetime": 0}

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            value = node.get("format")
            if isinstance(value, str) and value.startswith("^"):
                node["pattern"] = node.pop("format")
                found["regex"] += 1
            elif value == "datetime":
                node["format"] = "date-time"
                found["datetime"] += 1
            for child in node.values():
                fix(child)
        elif isinstance(node, list):
            for child in node:
                fix(child)

    fix(specs["invites-settings"])
    assert found["regex"] > 0
    assert found["datetime"] > 0


SPECS = _load()

# RFC 3339 (section 5.6 allows a lower-case "t" and "z"; Python's parser wants them upper-case).
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.fullmatch(value):
        return False
    datetime.fromisoformat(value.upper())
    return True


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return re.fullmatch(r"\d{4}-\d\d-\d\d", value) is not None and bool(date.fromisoformat(value))


@FORMATS.checks("locale")
def _is_locale(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[a-z]{2}_[A-Z]{2}", value) is not None


def resolve(ref: str, spec: dict[str, Any]) -> Any:
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def to_json_schema(node: Any, spec: dict[str, Any]) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: inline ``$ref``s, map ``nullable``, drop examples."""
    if isinstance(node, list):
        return [to_json_schema(item, spec) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return to_json_schema(resolve(node["$ref"], spec), spec)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in {"example", "examples", "description", "nullable"} or key.startswith("x-"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub, spec) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value, spec)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def operation(spec_name: str, template: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = SPECS[spec_name]["paths"][template][method.lower()]
    return operation


def request_schema(spec_name: str, template: str, method: str) -> dict[str, Any]:
    body = operation(spec_name, template, method)["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


def request_validator(spec_name: str, template: str, method: str) -> jsonschema.Draft7Validator:
    """A validator of the JSON request body of one operation, formats checked."""
    spec = SPECS[spec_name]
    schema = to_json_schema(request_schema(spec_name, template, method), spec)
    return jsonschema.Draft7Validator(schema, format_checker=FORMATS)
