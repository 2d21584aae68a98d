"""The trials of an automatic tuning run (`labkit.sweeps.tune`): each knob's
values against each SLO metric, one panel per (metric, knob), so a reader sees
which knob moves which metric and where the feasible settings lie.

A point is one trial: the mean over its seeds with the 95 % confidence
interval as an error bar, green where the trial meets the SLO and grey where
it misses; an open circle, without a bar, a trial stopped early (the mean of
the seeds it ran, which already proved a miss); a ring marks the Pareto front
of the SLO metrics, a star the best trial, a dashed line each objective's
limit. Takes the trials table and the SLO as plain data, so it never imports
the tuner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from plotly.subplots import make_subplots

from labkit.errors import ConfigError

from .common import CUT, DOWN, UP, _layout, _round

#: The colour of the confidence-interval bars.
BAR = "#bbbbbb"
#: Each kind of trial, drawn in this order: (name, which rows, marker style,
#: whether it carries the error bars).
_GROUPS = (
    ("stopped early", lambda t: t["stopped early"],
     {"color": DOWN, "size": 7, "symbol": "circle-open"}, False),
    ("misses the SLO", lambda t: ~t["meets SLO"] & ~t["stopped early"],
     {"color": DOWN, "size": 7}, True),
    ("meets the SLO", lambda t: t["meets SLO"], {"color": UP, "size": 8}, True),
    ("Pareto front", lambda t: t["pareto"],
     {"color": "rgba(0,0,0,0)", "size": 15, "line": {"color": "black", "width": 1.5}},
     False),
    ("best", lambda t: t["best"], {"color": "gold", "size": 18, "symbol": "star",
                                   "line": {"color": "black", "width": 1}}, False),
)


def _axis_values(column) -> tuple[list, bool]:
    """The knob's values as plotted, and whether they are categories."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool)
                  for v in column)
    return (_round(column) if numeric else [str(v) for v in column]), not numeric


def tuning_trials(trials, knobs: Sequence[str],
                  slo: Mapping[str, tuple[str, float]], *, minimize: str | None = None,
                  title: str = "Tuning trials"):
    """One row of panels per SLO metric (and the minimized metric, if it is not
    one), one column per knob. `trials`: the DataFrame of `tune` (columns: each
    knob, "<metric> mean/low/high", "meets SLO", "pareto", "best")."""
    metrics = list(dict.fromkeys([*slo, *([minimize] if minimize else [])]))
    needed = [*knobs, "meets SLO", "stopped early", "pareto", "best",
              *(f"{m} {part}" for m in metrics for part in ("mean", "low", "high"))]
    missing = [c for c in needed if c not in trials.columns]
    if missing or not knobs:
        raise ConfigError(f"trials lack the columns {missing or 'of any knob'}; pass "
                          f"the trials table of labkit.sweeps.tune")
    fig = make_subplots(rows=len(metrics), cols=len(knobs), shared_yaxes="rows",
                        column_titles=list(knobs), horizontal_spacing=0.04,
                        vertical_spacing=0.08)
    for row, metric in enumerate(metrics, start=1):
        for col, knob in enumerate(knobs, start=1):
            for name, pick, marker, with_bars in _GROUPS:
                chosen = trials[pick(trials)]
                mean = chosen[f"{metric} mean"]
                x, categorical = _axis_values(chosen[knob].tolist())
                bars = {"type": "data", "symmetric": False, "color": BAR,
                        "array": _round(chosen[f"{metric} high"] - mean),
                        "arrayminus": _round(mean - chosen[f"{metric} low"])}
                fig.add_scatter(
                    x=x, y=_round(mean), mode="markers", name=name, marker=marker,
                    error_y=bars if with_bars else None, legendgroup=name,
                    showlegend=row == 1 and col == 1, row=row, col=col,
                    text=[f"trial {t}" for t in chosen.index],
                    hovertemplate=f"%{{text}}: {knob} %{{x}}, {metric} %{{y:.4g}}"
                                  "<extra></extra>")
                if categorical:
                    fig.update_xaxes(type="category", row=row, col=col)
            if metric in slo:
                fig.add_hline(y=slo[metric][1], line={"color": CUT, "dash": "dash",
                                                      "width": 1}, row=row, col=col)
        fig.update_yaxes(title=metric + (f" ({slo[metric][0]} {slo[metric][1]:g})"
                                          if metric in slo else " (minimized)"),
                         row=row, col=1)
    return _layout(fig, f"{title}<br><sup>{len(trials)} trials · "
                        f"{int(trials['meets SLO'].sum())} meet the SLO · "
                        f"{int(trials['stopped early'].sum())} stopped early · mean "
                        f"and 95 % interval over the seeds</sup>", "", "",
                   height=140 + 240 * len(metrics), margin={"l": 90, "r": 20,
                                                            "t": 90, "b": 40})
