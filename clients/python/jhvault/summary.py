"""Small helpers for the notebook: glucose in mg/dL, time in range, hourly tables."""

import pandas as pd

from .schemas import short_name

MMOL_TO_MGDL = 18.0156

# How each schema aggregates over a resampling period.
_AGG = {"step-count": "sum", "physical-activity": "sum"}


def glucose_mgdl(df):
    """The blood-glucose readings of a frame as a Series of mg/dL, indexed by time (mmol/L converted)."""
    g = df[df["schema"].str.contains(":blood-glucose:", regex=False).fillna(False)]
    unit = g["unit"].str.lower().fillna("")
    v = g["value"].where(~unit.str.startswith("mmol"), g["value"] * MMOL_TO_MGDL)
    return pd.Series(v.to_numpy(), index=pd.DatetimeIndex(g["time"], name="time"), name="glucose_mg_dl").sort_index()


def time_in_range(df, low=70.0, high=180.0):
    """Time in range by reading count (CGM readings are evenly spaced).

    Returns a Series: readings, mean (mg/dL), below, in_range, above (each a
    fraction of the readings: < low, low..high inclusive, > high).
    """
    g = glucose_mgdl(df)
    n = int(g.count())
    if n == 0:
        return pd.Series({"readings": 0, "mean_mg_dl": float("nan"), "below": float("nan"),
                          "in_range": float("nan"), "above": float("nan")})
    return pd.Series({
        "readings": n,
        "mean_mg_dl": float(g.mean()),
        "below": float((g < low).sum() / n),
        "in_range": float(((g >= low) & (g <= high)).sum() / n),
        "above": float((g > high).sum() / n),
    })


def resample(df, freq="1h"):
    """A wide table: one column per schema (its short name), one row per period.

    Counts (steps) are summed, everything else averaged; glucose is in mg/dL.
    """
    cols = {}
    for schema, g in df.groupby("schema"):
        name = short_name(schema)
        if name == "blood-glucose":
            s = glucose_mgdl(g)
        else:
            s = pd.Series(g["value"].to_numpy(), index=pd.DatetimeIndex(g["time"], name="time")).sort_index()
        r = s.resample(freq)
        cols[name] = r.sum(min_count=1) if _AGG.get(name) == "sum" else r.mean()
    out = pd.DataFrame(cols)
    out.index.name = "time"
    return out
