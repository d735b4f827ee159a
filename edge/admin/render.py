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


REPORT_COLUMNS = [
    ("issued", "issued"),
    ("called", "called"),
    ("served", "served"),
    ("no_show", "no-show"),
    ("transferred", "transf."),
    ("wait_mean", "wait mean s"),
    ("wait_p90", "wait p90 s"),
    ("service_mean", "service mean s"),
    ("service_p90", "service p90 s"),
    ("r5", "非常满意"),
    ("r4", "满意"),
    ("r3", "基本满意"),
    ("r2", "不满意"),
    ("r1", "非常不满意"),
    ("unrated", "unrated"),
]


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per category and per window of a ``queue.report`` / ``report.daily``."""
    rows = []
    for kind, table in (
        ("category", report.get("categories") or {}),
        ("window", report.get("windows") or {}),
    ):
        for name, figures in table.items():
            wait, service = figures.get("wait_s") or {}, figures.get("service_s") or {}
            ratings = figures.get("ratings") or {}
            rows.append(
                {
                    "day": report.get("day"),
                    "kind": kind,
                    "name": name if kind == "category" else f"window {name}",
                    "issued": figures.get("issued", ""),
                    "called": figures.get("called"),
                    "served": figures.get("served"),
                    "no_show": figures.get("no_show"),
                    "transferred": figures.get("transferred"),
                    "wait_mean": wait.get("mean"),
                    "wait_p90": wait.get("p90"),
                    "service_mean": service.get("mean"),
                    "service_p90": service.get("p90"),
                    **{f"r{level}": ratings.get(str(level), 0) for level in range(5, 0, -1)},
                    "unrated": figures.get("unrated"),
                }
            )
    return rows


def report_table(report: dict[str, Any]) -> str:
    """The day's figures as a text table: categories, then windows, then issued/served per hour."""
    rows = report_rows(report)
    head = ["", *(title for _, title in REPORT_COLUMNS)]
    body = [[row["name"], *("-" if row[key] in (None, "") else str(row[key]) for key, _ in REPORT_COLUMNS)]
            for row in rows]  # fmt: skip
    lines = [f"queue report {report.get('day')}", *_aligned([head, *body])]
    hours = report.get("hours") or {}
    if hours:
        per_hour = [[f"{hour}:00", str(v.get("issued")), str(v.get("served"))] for hour, v in hours.items()]
        lines += ["", *_aligned([["hour", "issued", "served"], *per_hour])]
    return "\n".join(lines)


def report_csv(report: dict[str, Any]) -> str:
    """The same rows as CSV (one header line), for a spreadsheet."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(
        out, ["day", "kind", "name", *(key for key, _ in REPORT_COLUMNS)], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(report_rows(report))
    return out.getvalue().rstrip("\n")


def _aligned(table: list[list[str]]) -> list[str]:
    widths = [max(_width(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)).rstrip()
            for row in table]  # fmt: skip


def _width(text: str) -> int:
    """Columns a terminal gives ``text``: a Chinese character takes two."""
    return sum(2 if ord(sign) > 0x2E80 else 1 for sign in text)
