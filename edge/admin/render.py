"""hall-admin's output: results as indented lines, the fleet table, event lines."""

from __future__ import annotations

import base64
import json
from typing import Any

LONG_TEXT = 200


def readable(value: Any, indent: int = 0) -> list[str]:
    """Nested results as indented 'key: value' lines; long strings (images) shortened."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines += [f"{pad}{key}:", *readable(item, indent + 1)]
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict | list) and item:
                lines += [f"{pad}-", *readable(item, indent + 1)]
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return lines
    return [pad + _scalar(value)]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value if len(value) <= LONG_TEXT else f"{value[:60]}... ({len(value)} characters)"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value, ensure_ascii=False)


def fleet_rows(states: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for device, state in sorted(states.items()):
        components = state.get("components") or {}
        faults = {k: v for k, v in components.items() if v != "ok"}
        rows.append(
            {
                "device": device,
                "online": bool(state.get("online")),
                "version": state.get("version", "-"),
                "components": components,
                "faults": faults,
                "last_seen": _last_seen(state),
            }
        )
    return rows


def _last_seen(state: dict[str, Any]) -> str:
    if state.get("online"):
        return "now (up since " + str(state.get("started_at", "?")) + ")"
    for key in ("last_seen", "at", "stopped_at", "started_at"):
        if state.get(key):
            return str(state[key])
    return "unknown"


def fleet_table(rows: list[dict[str, Any]]) -> str:
    header = ("DEVICE", "ONLINE", "VERSION", "COMPONENTS", "LAST SEEN")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        if row["faults"]:
            components = " ".join(f"{k}={v}" for k, v in sorted(row["faults"].items()))
        else:
            components = f"all ok ({len(row['components'])})" if row["components"] else "-"
        online = "yes" if row["online"] else "NO"
        lines.append((row["device"], online, row["version"], components, row["last_seen"]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    online_count = sum(1 for r in rows if r["online"])
    text.append(f"{len(rows)} controller(s), {online_count} online")
    return "\n".join(text)


def find_png(result: dict[str, Any]) -> bytes | None:
    """The PNG in a display.snapshot result (``png_base64``), wherever the display put it."""
    candidates = [result.get("png_base64"), *result.values()]
    for value in candidates:
        if isinstance(value, str) and len(value) > 16:
            try:
                data = base64.b64decode(value, validate=True)
            except ValueError:
                continue
            if data.startswith(b"\x89PNG\r\n\x1a\n"):
                return data
    return None


def event_line(payload: bytes, as_json: bool) -> str:
    try:
        event = json.loads(payload)
    except ValueError:
        return f"(not JSON: {len(payload)} bytes)"
    if as_json or not isinstance(event, dict):
        return json.dumps(event, ensure_ascii=False)
    data = json.dumps(event.get("data", {}), ensure_ascii=False, separators=(",", ":"))
    return f"{event.get('at', '?')}  #{event.get('seq', '?')}  {event.get('type', '?')}  {data}"
