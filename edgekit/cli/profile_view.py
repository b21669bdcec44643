"""The terminal view of an ``edgekit profile`` document (local or from a remote device).

It reads only the JSON document (schema ``edgekit.profile/1``), so a profile taken on a
device over SSH prints exactly like a local one.
"""

from __future__ import annotations

import click

from .tables import print_table

TOP_OPS = 15


def _human(n: int | None, unit: str = "") -> str:
    if n is None:
        return "unknown"
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n}{unit}"


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def _ms(value: float) -> str:
    return f"{value:.4g}"  # four significant digits: 0.01234 and 123.4 ms alike


def _fps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _static_lines(doc: dict) -> list[str]:
    ops = ", ".join(f"{k} {v}" for k, v in list(doc["ops"].items())[:8])
    more = ", ..." if len(doc["ops"]) > 8 else ""
    share = ", ".join(f"{k} {100 * v:.0f}%" for k, v in doc["op_share"].items())
    int8 = doc.get("int8_mac_share")
    macs = f"MACs {doc['macs']:,} ({_human(doc['macs'])})" if doc["macs"] is not None else "MACs unknown"
    params = "params unknown" if doc["params"] is None else f"params {doc['params']:,}"
    lines = [f"{doc['model']}: {doc['format']}, {doc['size_bytes'] / 2**20:.2f} MiB, {params}, {macs} at batch 1"]
    if doc["params"] is not None:  # None: the graph was not read, and a static note says why
        lines += [f"{doc['op_count']} ops: {ops}{more}",
                  f"precision by op: {share or '-'}" + (f"; int8 MAC share {100 * int8:.0f}%" if int8 is not None else "")]
    lines += [f"note: {n}" for n in doc.get("static_notes", [])]
    return lines


def _env_line(doc: dict) -> str:
    env, run = doc["environment"], doc["runs"][0]
    load = env.get("load_average")
    pinned = f", pinned to CPUs {env['cpus_pinned']}" if env.get("cpus_pinned") else ""
    xnn = {True: ", XNNPACK on", False: ", XNNPACK off", None: ""}[run.get("xnnpack")]
    where = f" on {doc['remote']['destination']}" if doc.get("remote") else ""
    return (f"measured{where}: {env['cpu_model']} ({env['cpu_cores']} cores{pinned}"
            f"{f', load {load[0]}' if load else ''}), {env['os']} {env['arch']}; "
            f"{env['runtime']} {env.get('runtime_version') or ''}{xnn}; edgekit {env['edgekit_version']}")


def _runs_table(doc: dict) -> None:
    arena = any(r["memory"]["arena_bytes"] is not None for r in doc["runs"])
    rows = []
    for r in doc["runs"]:
        lat, mem = r["latency_ms"], r["memory"]
        rows.append([str(r["threads"]), _ms(r["init_ms"]), _ms(r["first_inference_ms"]),
                     *(_ms(lat[k]) for k in ("mean", "p50", "p90", "p99")),
                     f"{100 * lat['cv']:.1f}%", _fps(r["fps"]), str(lat["runs"]), _mib(mem["peak_rss_bytes"]),
                     *([_mib(mem["arena_bytes"])] if arena else [])])
    print_table(f"latency in ms (batch {doc['batch']}, {doc['timing']}, {doc['warmup']} warm-up; CV = std / mean)",
                ["threads", "init", "first", "mean", "p50", "p90", "p99", "CV", "FPS", "runs", "RSS MiB",
                 *(["arena MiB"] if arena else [])], rows)


def _per_op_table(run: dict) -> None:
    per_op = run.get("per_op")
    if not per_op:
        return
    ops = sorted(per_op["ops"], key=lambda o: -o["ms"])[:TOP_OPS]
    title = f"per-op, {run['threads']} thread(s), top {len(ops)} of {len(per_op['ops'])}" + \
        (" (ESTIMATE)" if per_op["estimated"] else "")
    print_table(title, ["op", "type", "MACs", "ms", "share"],
                [[o["name"][-60:], o["type"], "-" if o["macs"] is None else _human(o["macs"]), _ms(o["ms"]),
                  f"{100 * o['share']:.1f}%"]
                 for o in ops])
    click.echo(f"per-op method: {per_op['method']}")


def print_profile(doc: dict) -> None:
    for line in _static_lines(doc):
        click.echo(line)
    click.echo(_env_line(doc))
    _runs_table(doc)
    for run in doc["runs"]:
        _per_op_table(run)
    mem = doc["runs"][0]["memory"]
    if mem["arena_bytes"] is None and mem["arena_note"]:
        click.echo(f"arena: {mem['arena_note']}")
