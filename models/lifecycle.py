"""The model lifecycle behind the CLI: train and register a bundle, score a log with a
registered bundle, evaluate one, and promote a challenger over the champion after
comparing both on the same test period.

Promotion rule: the challenger becomes champion when its primary metric (delay ROC AUC
at half the statutory time, :data:`PRIMARY_METRIC`) on the challenger's test period is at
least the champion's on the same period minus ``tolerance``, and its false-alarm share
stays within the alert budget it was trained for. Both models score the same events; the
decision and both figures are written on the registered versions as tags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.engine import Reference
from giamsat.settings import Settings
from models import registry
from models.bundle import BundleError, ModelBundle
from models.dataset import Split, closed_table
from models.integrity import IntegrityModel
from models.scoring import EntityBudget, Scores, score_log
from models.waste import WasteModel

__all__ = [
    "PRIMARY_METRIC",
    "Promotion",
    "evaluate_and_log",
    "fit_integrity",
    "promote",
    "score",
    "train_and_register",
]

PRIMARY_METRIC = "delay_auc_half"
FALSE_ALARMS = "delay_false_alarm_share"
Say = Callable[[str], None]


def waste_threshold(waste: WasteModel, events: pd.DataFrame, ref: Reference, split: Split,
                    share: float) -> float:  # fmt: skip
    """The waste score above which ``share`` of the training period's dossiers lie."""
    closed = closed_table(events, ref)
    train = closed[split.period(closed["started_at"]) == 0]
    scores = waste.transform(train)["waste_score"].to_numpy(dtype=np.float64)
    return float(np.nanquantile(scores, 1.0 - share)) if len(scores) else 1.0


def fit_integrity(
    events: pd.DataFrame, ref: Reference, split: Split, share: float
) -> IntegrityModel:
    """The integrity detectors fitted on the training period as it stood when it ended:
    dossiers started before the calibration period, with their events up to then (open
    ones as prefixes, as scoring will see open dossiers)."""
    until = split.calibrate_from
    known = events[events[s.TIMESTAMP] < until]
    table = closed_table(known, ref, until)
    return IntegrityModel(alert_share=share).fit(table, known)


def train_and_register(
    settings: Settings,
    events: pd.DataFrame,
    ref: Reference,
    *,
    delay_params: dict[str, Any] | None = None,
    labels: pd.DataFrame | None = None,
    report_dir: Path | None = None,
    source: str = "",
    say: Say = print,
) -> registry.RegisteredBundle:
    """Train delay and waste models on ``events``, evaluate on the test period, log the
    run with its report to MLflow and register the bundle."""
    from models.train import train

    result = train(
        events, ref, delay_params=delay_params, labels=labels, report_dir=report_dir, progress=say
    )
    say("choosing the waste alert threshold")
    threshold = waste_threshold(result.waste, events, ref, result.split, settings.waste_alert_share)
    say("fitting the integrity detectors")
    integrity = fit_integrity(events, ref, result.split, settings.integrity_alert_share)
    bundle = ModelBundle(
        integrity=integrity,
        delay=result.delay,
        waste=result.waste,
        split=result.split,
        waste_threshold=threshold,
        metrics=dict(result.metrics),
        info={"source": source, "events": int(len(events)), "catalogue": ref.catalogue is not None},
        process=ref.process,
        catalogue=ref.catalogue,
        agencies=ref.agencies,
        calendar=ref.calendar,
    )
    say("logging to MLflow and registering the bundle")
    params = {**result.delay.get_params(), **{f"waste_{k}": v for k, v in
                                             result.waste.get_params().items()}}  # fmt: skip
    params.update(
        source=source,
        calibrate_from=result.split.calibrate_from.isoformat(),
        test_from=result.split.test_from.isoformat(),
        waste_alert_share=settings.waste_alert_share,
        integrity_alert_share=settings.integrity_alert_share,
    )
    return registry.log_training(settings, bundle, params=params, report=result.report)


def score(
    settings: Settings,
    events: pd.DataFrame,
    ref: Reference,
    *,
    alias: str = registry.CHAMPION,
    bundle_dir: Path | None = None,
    as_of: pd.Timestamp | None = None,
    say: Say = print,
) -> tuple[Scores, str]:
    """Scores with the bundle an alias points at (or a bundle directory); returns the
    scores and which model gave them."""
    if bundle_dir is not None:
        bundle, which = ModelBundle.load(bundle_dir), str(bundle_dir)
    else:
        registered = registry.load_bundle(settings, alias)
        bundle, which = registered.bundle, f"{settings.model_name} v{registered.version} ({alias})"
    if bundle.info.get("catalogue") and ref.catalogue is None:
        raise BundleError(
            f"{which} was trained with a procedure catalogue (route conformance features): "
            "pass the same catalogue with --catalog"
        )
    ref = Reference(ref.calendar, ref.catalogue, ref.agencies, bundle.process)
    budget = EntityBudget(settings.entity_alert_fdr, settings.entity_alerts_per_province)
    scored = score_log(bundle, events, ref, as_of=as_of, progress=say, entity_budget=budget)
    return scored, which


@dataclass(frozen=True)
class Promotion:
    """The outcome of a comparison: both versions' figures and what was decided."""

    champion: str
    challenger: str
    metrics: pd.DataFrame  # index metric, columns champion / challenger
    promoted: bool
    reason: str


def evaluate_bundle(
    bundle: ModelBundle,
    events: pd.DataFrame,
    ref: Reference,
    split: Split,
    report_dir: Path | None = None,
    say: Say = print,
) -> dict[str, float]:
    """The bundle's metrics on the test period of ``split`` (see models.train.evaluate)."""
    from models.train import evaluate

    ref = Reference(ref.calendar, ref.catalogue, ref.agencies, bundle.process)
    metrics, _, _ = evaluate(
        bundle.delay, bundle.waste, events, ref, split, report_dir=report_dir, progress=say
    )
    return metrics


def evaluate_and_log(
    settings: Settings,
    registered: registry.RegisteredBundle,
    events: pd.DataFrame,
    ref: Reference,
    report_dir: Path,
    say: Say = print,
) -> dict[str, float]:
    """Evaluate a registered bundle on its own test period of ``events``, write the
    report and log both to MLflow."""
    bundle = registered.bundle
    metrics = evaluate_bundle(bundle, events, ref, bundle.split, report_dir=report_dir, say=say)
    registry.log_evaluation(settings, registered.version, metrics, report_dir)
    return metrics


def promote(
    settings: Settings,
    events: pd.DataFrame,
    ref: Reference,
    *,
    challenger: str = registry.CHALLENGER,
    tolerance: float = 0.0,
    force: bool = False,
    say: Say = print,
) -> Promotion:
    """Compare the ``challenger`` alias with the champion on the challenger's test period
    of ``events``, and move ``champion`` when the challenger is at least as good."""
    champ = registry.load_bundle(settings, registry.CHAMPION)
    chall = registry.load_bundle(settings, challenger)
    if champ.version == chall.version:
        frame = pd.DataFrame({"champion": chall.bundle.metrics}).rename_axis("metric")
        return Promotion(champ.version, chall.version, frame, False, "already the champion")
    split = chall.bundle.split
    say(f"evaluating the champion v{champ.version} on the challenger's test period")
    a = evaluate_bundle(champ.bundle, events, ref, split, say=say)
    say(f"evaluating the challenger v{chall.version}")
    b = evaluate_bundle(chall.bundle, events, ref, split, say=say)
    frame = pd.DataFrame({"champion": pd.Series(a), "challenger": pd.Series(b)})
    frame = frame.rename_axis("metric")
    old, new = a.get(PRIMARY_METRIC, float("nan")), b.get(PRIMARY_METRIC, float("nan"))
    budget = chall.bundle.delay.max_false_alarms
    alarms = b.get(FALSE_ALARMS, 0.0)
    better = bool(np.isfinite(new) and (not np.isfinite(old) or new >= old - tolerance))
    within = bool(not np.isfinite(alarms) or alarms <= budget + 0.05)
    promoted = force or (better and within)
    if force:
        reason = "forced"
    elif not better:
        reason = f"{PRIMARY_METRIC} {new:.4f} below the champion's {old:.4f}"
    elif not within:
        reason = f"false alarms {alarms:.1%} over the budget {budget:.0%}"
    else:
        reason = f"{PRIMARY_METRIC} {new:.4f} vs the champion's {old:.4f}"
    if promoted:
        registry.set_alias(settings, registry.CHAMPION, chall.version)
    tags = {
        "promotion": "promoted" if promoted else "kept champion",
        "promotion_reason": reason,
        "compared_with": f"v{champ.version}",
        "test_from": split.test_from.isoformat(),
    }
    registry.tag_version(settings, chall.version, tags)
    return Promotion(champ.version, chall.version, frame, promoted, reason)
