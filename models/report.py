"""The evaluation report: ``report.md`` with the figures and tables of
:func:`models.train.evaluate`, and PNG plots beside it (matplotlib, Agg backend).

Plots: ROC and precision-recall curves at half time, AUC by prefix position, reliability
diagram, lead time of the first warning, remaining-time error, waste days by agency.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.evaluate import LEAD_DAYS

__all__ = ["write_report"]

#: how the scorers are named in plots and tables.
NAMES = {
    "delay": "delay model (LightGBM)",
    "logistic": "logistic regression",
    "procedure_rate": "procedure late rate",
}
COLOURS = {"delay": "#1f5fa8", "logistic": "#e07b00", "procedure_rate": "#7a7a7a"}
TOP_AGENCIES = 15


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def save_figure(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def _models(frame: pd.DataFrame) -> list[str]:
    return [m for m in NAMES if m in frame]


def _plot_curves(
    tables: Mapping[str, pd.DataFrame], metrics: Mapping[str, float], out: Path
) -> str | None:
    roc, pr = tables.get("roc_half"), tables.get("pr_half")
    if roc is None or pr is None or roc.empty:
        return None
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    for name in NAMES:
        part = roc[roc["model"] == name]
        if len(part):
            label = f"{NAMES[name]} (AUC {metrics.get(f'{name}_auc_half', np.nan):.3f})"
            left.plot(part["fpr"], part["tpr"], color=COLOURS[name], label=label, lw=1.8)
        part = pr[pr["model"] == name]
        if len(part):
            label = f"{NAMES[name]} (AP {metrics.get(f'{name}_ap_half', np.nan):.3f})"
            right.plot(part["recall"], part["precision"], color=COLOURS[name], label=label, lw=1.8)
    left.plot([0, 1], [0, 1], ls=":", color="black", lw=1)
    left.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="ROC at half of the statutory time",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    base = metrics.get("late_share_half", np.nan)
    right.axhline(base, ls=":", color="black", lw=1, label=f"late share {base:.3f}")
    right.set(
        xlabel="recall (late dossiers found)",
        ylabel="precision",
        title="Precision-recall at half of the statutory time",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    left.legend(loc="lower right", fontsize=9)
    right.legend(loc="upper right", fontsize=9)
    return save_figure(fig, out / "roc_pr_half.png")


def _plot_positions(table: pd.DataFrame | None, out: Path) -> str | None:
    if table is None or table.empty:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    x = np.arange(len(table))
    for name in _models(table):
        ax.plot(x, table[name], marker="o", color=COLOURS[name], label=NAMES[name], lw=1.8)
    ax.set(
        xticks=x,
        xticklabels=table["events"],
        xlabel="events so far (prefix position)",
        ylabel="ROC AUC",
        title="Delay ROC AUC by prefix position (test period, dense cuts)",
    )
    ax.set_ylim(max(0.0, float(np.nanmin(table[_models(table)].to_numpy())) - 0.05), 1.0)
    rows = ax.twinx()
    rows.bar(x, table["rows"], color="#cccccc", alpha=0.5, width=0.6, zorder=0)
    rows.set_ylabel("prefixes scored (grey bars)", color="#888888")
    rows.spines["right"].set_visible(True)
    rows.grid(False)
    ax.set_zorder(rows.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=9, frameon=False)
    return save_figure(fig, out / "auc_by_position.png")


def _plot_reliability(
    table: pd.DataFrame | None, metrics: Mapping[str, float], out: Path
) -> str | None:
    if table is None or table.empty:
        return None
    plt = pyplot()
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(6.2, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], ls=":", color="black", lw=1, label="perfect calibration")
    brier = metrics.get("delay_brier_dense", np.nan)
    ax.plot(
        table["predicted"],
        table["observed"],
        marker="o",
        color=COLOURS["delay"],
        label=f"delay model (Brier {brier:.4f})",
        lw=1.8,
    )
    ax.set(
        ylabel="observed late share",
        xlim=(0, 1),
        ylim=(0, 1),
        title="Reliability of the delay risk (test period, dense cuts)",
    )
    ax.legend(loc="upper left", fontsize=9)
    counts.bar(table["predicted"], table["rows"], width=0.04, color=COLOURS["delay"])
    counts.set(yscale="log", xlabel="predicted risk (mean of the bin)", ylabel="prefixes")
    return save_figure(fig, out / "reliability.png")


def _plot_lead(table: pd.DataFrame | None, metrics: Mapping[str, float], out: Path) -> str | None:
    if table is None or table.empty:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    x = np.arange(len(table))
    over = [c for c in table.columns if c.startswith("statutory_over")][0]
    ax.bar(x - 0.2, table["late_dossiers"], width=0.4, color="#9bb7d9", label="all late dossiers")
    ax.bar(
        x + 0.2,
        table[over],
        width=0.4,
        color=COLOURS["delay"],
        label=f"statutory time over {LEAD_DAYS:g} working days",
    )
    edge = x[list(table["lead"]).index("2-3")] - 0.5
    ax.axvline(edge, color="#b00020", ls="--", lw=1)
    ax.text(
        edge + 0.05,
        ax.get_ylim()[1] * 0.97,
        f"{LEAD_DAYS:g} working days ahead ->",
        color="#b00020",
        fontsize=9,
        va="top",
    )
    ax.set(
        xticks=x,
        xticklabels=table["lead"],
        ylabel="late dossiers",
        xlabel="working days before the deadline at the first warning",
        title=f"Lead time of the first warning (threshold "
        f"{metrics.get('delay_threshold', np.nan):.3f}, false alarms "
        f"{metrics.get('delay_false_alarm_share', np.nan):.1%})",
    )
    ax.legend(loc="upper right", fontsize=9)
    return save_figure(fig, out / "lead_time.png")


def _plot_remaining(table: pd.DataFrame | None, out: Path) -> str | None:
    if table is None or table.empty:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    x = np.arange(len(table))
    ax.plot(x, table["model_mae"], marker="o", color=COLOURS["delay"], label="model median (p50)")
    ax.plot(
        x,
        table["naive_mae"],
        marker="s",
        color=COLOURS["procedure_rate"],
        label="naive: procedure median at the step",
    )
    ax.set(
        xticks=x,
        xticklabels=table["events"],
        xlabel="events so far (prefix position)",
        ylabel="mean absolute error (working days)",
        title="Remaining honest working days: error and p90 coverage",
    )
    ax.set_ylim(bottom=0)
    cover = ax.twinx()
    cover.plot(
        x, table["p90_coverage"], ls="--", marker=".", color="#2a9d3c", label="p90 coverage (right)"
    )
    cover.set_ylim(0.5, 1.0)
    cover.set_ylabel("share covered by the p90", color="#2a9d3c")
    cover.spines["right"].set_visible(True)
    cover.grid(False)
    lines = ax.get_legend_handles_labels()
    more = cover.get_legend_handles_labels()
    ax.legend(
        lines[0] + more[0],
        lines[1] + more[1],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=3,
        fontsize=9,
        frameon=False,
    )
    return save_figure(fig, out / "remaining_error.png")


def _plot_waste(table: pd.DataFrame | None, out: Path) -> str | None:
    if table is None or table.empty:
        return None
    plt = pyplot()
    top = table.nlargest(TOP_AGENCIES, "waste_days").iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(top) + 1.4))
    key = top.columns[0]
    ax.barh(top[key].astype(str), top["waste_days"], color="#b5651d")
    for y, (days, share) in enumerate(zip(top["waste_days"], top["waste_share"], strict=True)):
        ax.text(days, y, f" {share:.0%} of its dossiers' time", va="center", fontsize=8)
    ax.set(xlabel="waste (citizen working days)", title=f"Waste days by agency (top {len(top)})")
    ax.set_xlim(0, float(top["waste_days"].max()) * 1.25 or 1.0)
    return save_figure(fig, out / "waste_by_agency.png")


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table (no tabulate dependency)."""

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return "" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([head, rule, *rows])


def _m(metrics: Mapping[str, float], key: str, fmt: str = ".3f") -> str:
    value = metrics.get(key, np.nan)
    return "n/a" if value is None or not np.isfinite(value) else format(value, fmt)


def _headline(metrics: Mapping[str, float]) -> list[str]:
    rows = []
    for name in NAMES:
        if f"{name}_auc_half" in metrics:
            rows.append(
                {
                    "scorer": NAMES[name],
                    "ROC AUC at half time": metrics[f"{name}_auc_half"],
                    "AP at half time": metrics.get(f"{name}_ap_half", np.nan),
                    "Brier at half time": metrics.get(f"{name}_brier_half", np.nan),
                    "AUC over positions": metrics.get(f"{name}_auc_by_position", np.nan),
                    "Brier, dense cuts": metrics.get(f"{name}_brier_dense", np.nan),
                }
            )
    lead = f"{LEAD_DAYS:g}d"
    return [
        "## Delay early warning",
        "",
        f"Scored when half of the statutory time has elapsed: "
        f"{_m(metrics, 'dossiers_half', ',.0f')} test dossiers still open then, "
        f"{_m(metrics, 'late_share_half', '.1%')} of them ended late.",
        "",
        markdown_table(pd.DataFrame(rows), 4) if rows else "",
        "",
        f"Warnings at the model's threshold {_m(metrics, 'delay_threshold', '.3f')} "
        f"(chosen on the calibration period's dense cuts), re-scoring each test dossier at "
        f"every event and every tenth of its statutory time:",
        "",
        f"- on-time dossiers ever warned (false alarms): "
        f"{_m(metrics, 'delay_false_alarm_share', '.1%')} of "
        f"{_m(metrics, 'dossiers_dense', ',.0f')} dossiers",
        f"- late dossiers warned at all before they ended: "
        f"{_m(metrics, 'delay_warned_share', '.1%')} of "
        f"{_m(metrics, 'late_dossiers_dense', ',.0f')}",
        f"- late dossiers warned at least {LEAD_DAYS:g} working days before the deadline: "
        f"{_m(metrics, f'delay_warned_{lead}_share', '.1%')} of all late dossiers, "
        f"**{_m(metrics, f'delay_warned_{lead}_share_over_{lead}', '.1%')}** of the "
        f"{_m(metrics, f'late_dossiers_over_{lead}', ',.0f')} whose statutory time is over "
        f"{LEAD_DAYS:g} working days. A procedure due in 0.5 to {LEAD_DAYS:g} working days "
        f"cannot be warned {LEAD_DAYS:g} days ahead, so the quality floor (70 %) applies to "
        f"the latter only.",
        f"- median lead time of the first warning: "
        f"{_m(metrics, 'delay_lead_days_median', '.1f')} working days",
        "",
    ]


def write_report(
    metrics: Mapping[str, float], tables: Mapping[str, pd.DataFrame], out_dir: Path
) -> Path:
    """Write ``report.md`` and its PNG plots into ``out_dir`` (created); returns the
    directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {
        "curves": _plot_curves(tables, metrics, out),
        "positions": _plot_positions(tables.get("auc_by_position"), out),
        "reliability": _plot_reliability(tables.get("calibration"), metrics, out),
        "lead": _plot_lead(tables.get("lead_time"), metrics, out),
        "remaining": _plot_remaining(tables.get("remaining_by_position"), out),
        "waste": _plot_waste(tables.get("waste_by_agency"), out),
    }

    def image(key: str, alt: str) -> list[str]:
        return [f"![{alt}]({plots[key]})", ""] if plots[key] else []

    def table(key: str, digits: int = 3, head: int | None = None) -> list[str]:
        frame = tables.get(key)
        if frame is None or frame.empty:
            return ["(no rows)", ""]
        return [markdown_table(frame if head is None else frame.head(head), digits), ""]

    lines = ["# GiamSat model evaluation (test period)", "", *_headline(metrics)]
    lines += image("curves", "ROC and precision-recall at half time")
    lines += ["### AUC by prefix position", "", *table("auc_by_position")]
    lines += image("positions", "AUC by prefix position")
    lines += ["### Lead time of the first warning", "", *table("lead_time")]
    lines += image("lead", "lead time")
    lines += ["### Calibration (reliability bins, dense cuts)", "", *table("calibration")]
    lines += image("reliability", "reliability diagram")
    lines += [
        "## Remaining time",
        "",
        f"Median (p50) remaining honest working days: MAE {_m(metrics, 'remaining_mae')} "
        f"against {_m(metrics, 'naive_remaining_mae')} for the naive baseline (median of "
        f"the procedure at that step in training); the p90 covers "
        f"{_m(metrics, 'remaining_p90_coverage', '.1%')} of the prefixes.",
        "",
        *table("remaining_by_position"),
        *image("remaining", "remaining-time error"),
        "## Waste",
        "",
        f"{_m(metrics, 'waste_days_total', ',.0f')} citizen working days of waste over "
        f"{_m(metrics, 'waste_dossiers', ',.0f')} finished test dossiers "
        f"({_m(metrics, 'waste_days_mean', '.2f')} per dossier).",
        "",
    ]
    if "waste_ap" in metrics:
        kinds = sorted(k.removeprefix("waste_ap_") for k in metrics if k.startswith("waste_ap_"))
        lines += [
            f"Average precision of the waste score on injected waste against normal "
            f"dossiers: {_m(metrics, 'waste_ap')} (base rate "
            f"{_m(metrics, 'waste_labelled_share', '.2%')}); by type: "
            + ", ".join(f"{k} {_m(metrics, 'waste_ap_' + k)}" for k in kinds)
            + ".",
            "",
        ]
    lines += [
        f"Top {TOP_AGENCIES} agencies by waste days:",
        "",
        *table("waste_by_agency", 2, TOP_AGENCIES),
        *image("waste", "waste by agency"),
    ]
    lines += [
        "## All metrics",
        "",
        markdown_table(
            pd.DataFrame({"metric": list(metrics), "value": [float(v) for v in metrics.values()]}),
            4,
        ),
        "",
    ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return out
