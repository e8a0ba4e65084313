"""Rich rendering of the monitor's data dict (the same dict `monitor --once --json` prints)."""

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def _fmt(value, spec: str = ".4g", missing: str = "n/a") -> str:
    if value is None:
        return missing
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def _absent(title: str, section: dict) -> Panel:
    return Panel(Text(section.get("reason", "absent"), style="yellow"), title=title)


def freshness_panel(section: dict) -> Panel:
    if section.get("status") != "ok":
        return _absent("Data freshness", section)
    table = Table(expand=True)
    for col in ("symbol", "raw age", "snapshots (last day / age)", "features (last day / age)",
                "gaps (last day)", "gap rate"):
        table.add_column(col)
    for entry in section["symbols"]:
        raw, snaps, feats = entry["raw"], entry["l2_snapshots"], entry["l2_features"]
        last_gap = entry["gaps"][-1] if entry["gaps"] else None
        table.add_row(
            f"{entry['exchange']}/{entry['symbol']}",
            _age(raw["age_s"]) if raw else "no raw captures",
            f"{snaps['last_date']} / {_age(snaps['age_s'])}" if snaps else "none",
            f"{feats['last_date']} / {_age(feats['age_s'])}" if feats else "none",
            f"{last_gap['gaps']} ({last_gap['date']})" if last_gap else "n/a",
            _fmt(last_gap["gap_rate"], ".2%") if last_gap else "n/a",
        )
    return Panel(table, title="Data freshness and capture gaps")


def features_panel(section: dict) -> Panel:
    if section.get("status") != "ok":
        return _absent("Feature quality", section)
    lines = [
        f"day {section['date']}: {section['rows']} rows x {section['features']} features "
        f"(from {section['source']})",
        f"null rate {_fmt(section['null_rate'], '.3%')}, inf rate "
        f"{_fmt(section['inf_rate'], '.3%')}, NaN rate {_fmt(section['nan_rate'], '.3%')}",
    ]
    worst = ", ".join(f"{w['feature']} {w['null_rate']:.2%}" for w in section["worst_null_rates"])
    lines.append(f"most nulls: {worst or 'none'}")
    bad = section["features_with_inf_or_nan"]
    lines.append(f"features with inf/NaN: {', '.join(bad) if bad else 'none'}")
    return Panel(Text("\n".join(lines)), title="Feature quality")


def drift_panel(section: dict) -> Panel:
    title = "Drift (PSI vs champion's training window)"
    if section.get("status") != "ok":
        return _absent(title, section)
    parts = []
    for champ in section["champions"]:
        name = f"{champ['model']} v{champ['version']}"
        if champ.get("status") != "ok":
            parts.append(Text(f"{name}: {champ['reason']}", style="yellow"))
            continue
        note = " (latest day is inside the training window)" if champ["latest_in_training_window"] else ""
        parts.append(Text(
            f"{name}: reference {champ['reference']['start']} .. {champ['reference']['end']}; "
            f"latest {champ['latest_date']}{note}; max PSI {_fmt(champ['max_psi'])}, "
            f"over the model's top features {_fmt(champ['max_psi_top_features'])}"
        ))
        table = Table(expand=True)
        table.add_column("feature")
        table.add_column("PSI", justify="right")
        for row in champ["top"]:
            style = "red" if row["psi"] > 0.25 else "yellow" if row["psi"] > 0.1 else ""
            star = " *" if row["model_top_feature"] else ""
            table.add_row(row["feature"] + star, Text(f"{row['psi']:.4f}", style=style))
        parts.append(table)
    return Panel(Group(*parts), title=title + "  (* = a top feature of the model)")


def performance_panel(section: dict) -> Panel:
    if section.get("status") != "ok":
        return _absent("Model performance", section)
    table = Table(expand=True)
    for col in ("model", "source", "horizon", "predictions", "IC", "rank IC", "hit rate",
                "last window IC"):
        table.add_column(col)
    for m in section["models"]:
        if m.get("status") != "ok":
            table.add_row(f"{m['model']} v{m['version']}", m["source"], _fmt(m["horizon"]),
                          str(m["predictions"]), Text(m["reason"], style="yellow"), "", "", "")
            continue
        last = m["rolling"][-1]["ic"] if m["rolling"] else None
        table.add_row(f"{m['model']} v{m['version']}", m["source"], m["horizon"],
                      str(m["predictions"]), _fmt(m["ic"]), _fmt(m["rank_ic"]),
                      _fmt(m["hit_rate"], ".2%"), _fmt(last))
    return Panel(table, title=f"Model performance (since {section['since']})")


def paper_panel(section: dict) -> Panel:
    if section.get("status") != "ok":
        return _absent("Paper trading", section)
    table = Table(expand=True)
    for col in ("run", "symbol", "trades", "realized", "fees", "net", "position", "last trade"):
        table.add_column(col)
    for r in section["runs"]:
        table.add_row(r["run_id"], r["symbol"], str(r["trades"]), _fmt(r["realized_pnl"], ".2f"),
                      _fmt(r["fees"], ".2f"), _fmt(r["net_pnl"], ".2f"), _fmt(r["position"]),
                      _fmt(r["last_trade"]))
    return Panel(table, title=f"Paper PnL (total net {section['total_net_pnl']:.2f})")


def render(data: dict) -> Group:
    header = Text(
        f"trade-pipeline monitor - {data['exchange']}/{data['symbol']} - home {data['home']} - "
        f"{data['generated_at']}",
        style="bold",
    )
    return Group(
        header,
        freshness_panel(data["freshness"]),
        features_panel(data["features"]),
        drift_panel(data["drift"]),
        performance_panel(data["performance"]),
        paper_panel(data["paper"]),
    )
