"""Turning verified export lines into rows and a typed pandas DataFrame.

Columns, in order: time (datetime64[ns, UTC]: the reading's time, or the
start of its interval), end_time (the interval's end, NaT for a point in
time), schema (the canonical id), value and unit (float64, string), value2
and unit2 (the second value where a reading has one: diastolic blood
pressure, a physical activity's kcal, a sleep episode's total sleep time;
a sleep episode's value is its length in minutes, as the csv export has
it), source (the device or app, from the
OMH header's external datasheets) and uuid.

A reading of a schema without a typed model in the vault (such as
ieee:food-entry:0.1) has its schema, times, source and uuid in the frame and
no value: its body is in the omh point, the csv body column and the FHIR
Observation's attachment (docs/export.md).
"""

import csv
import json
import math

import pandas as pd

from . import times
from .errors import ExportFormatError, ManifestError

COLUMNS = ["time", "end_time", "schema", "value", "unit", "value2", "unit2", "source", "uuid"]
CSV_HEADER = "uuid,schema,time,end_time,value,unit,value2,unit2,source,body"
# The header before the body column (a vault from before it): still read.
CSV_HEADER_NO_BODY = "uuid,schema,time,end_time,value,unit,value2,unit2,source"

# OMH duration units in seconds (months and years are nominal).
_DURATION_SECONDS = {
    "ps": 1e-12, "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "sec": 1.0, "min": 60.0, "h": 3600.0,
    "d": 86400.0, "wk": 604800.0, "Mo": 2629746.0, "yr": 31556952.0,
}

# The body member holding each schema's value, and its second value.
_OMH_VALUES = {
    "blood-glucose": ("blood_glucose", None),
    "heart-rate": ("heart_rate", None),
    "step-count": ("step_count", None),
    "blood-pressure": ("systolic_blood_pressure", "diastolic_blood_pressure"),
    "body-weight": ("body_weight", None),
    "oxygen-saturation": ("oxygen_saturation", None),
    "respiratory-rate": ("respiratory_rate", None),
    "body-temperature": ("body_temperature", None),
    "physical-activity": ("distance", "kcal_burned"),
    "sleep-episode": (None, "total_sleep_time"),  # value: the episode's length in minutes
}


def _uv(body, member):
    v = body.get(member) if member else None
    if isinstance(v, dict):
        return v.get("value"), v.get("unit")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v, None
    return None, None


def _source(header):
    """Where a reading came from, as the vault's csv export writes it (export.provenance)."""
    sheets = [d for d in header.get("external_datasheets") or [] if isinstance(d, dict)]
    if not sheets:
        return None
    if len(sheets) == 1 and sheets[0].get("datasheet_type", "") in ("", "source_name"):
        return sheets[0].get("datasheet_reference")
    parts = []
    for d in sheets:
        t = d.get("datasheet_type", "")
        parts.append((f"{t}: " if t not in ("", "source_name") else "") + str(d.get("datasheet_reference", "")))
    return "; ".join(parts)


def _omh_times(tf):
    """(start, end, duration_s) of an OMH effective_time_frame, as the vault reads it (omh.TimeFrame.Start).

    Exactly one of date_time and time_interval is valid in a stored point; a
    member present but invalid beside a valid one is kept verbatim, so each
    is parsed rather than trusted for being there. An interval given as end
    and duration gets its start computed (omh.subtractDuration). start and
    end are RFC 3339 texts; start is None when the frame has no time.
    """
    if not isinstance(tf, dict):
        return None, None, None
    if times.parse(tf.get("date_time")) is not None:
        return tf["date_time"], None, None
    ti = tf.get("time_interval")
    if not isinstance(ti, dict):
        return None, None, None
    start, end, d = ti.get("start_date_time"), ti.get("end_date_time"), ti.get("duration")
    ps, pe = times.parse(start), times.parse(end)
    dur_ok = (isinstance(d, dict) and d.get("unit") in times.UNIT_NANOS and isinstance(d.get("value"), (int, float))
              and not isinstance(d.get("value"), bool) and math.isfinite(d["value"]))
    if ps is not None and pe is not None:
        return start, end, None
    if ps is not None and dur_ok:
        return start, None, d["value"] * times.UNIT_NANOS[d["unit"]] / times.NS
    if pe is not None and dur_ok:
        t = times.subtract(pe, d["value"], d["unit"])
        return (times.format_utc(t) if t is not None else None), end, None
    return None, None, None


def omh_row(line):
    """One canonical OMH point (a JSON line) as a row tuple in COLUMNS order (times as strings)."""
    p = json.loads(line)
    h, b = p.get("header", {}), p.get("body", {})
    sid = h.get("schema_id", {})
    schema = f"{sid.get('namespace')}:{sid.get('name')}:{sid.get('version')}"
    members = _OMH_VALUES.get(sid.get("name"), (None, None))
    value, unit = _uv(b, members[0])
    value2, unit2 = _uv(b, members[1])
    start, end, dur = _omh_times(b.get("effective_time_frame"))
    if sid.get("name") == "sleep-episode" and start:
        t0, t1 = times.instant(start), times.instant(end)
        if t0 is not None and t1 is None and dur is not None:
            t1 = t0 + round(dur * times.NS)
        if t0 is not None and t1 is not None:
            value, unit = (t1 - t0) / 60e9, "min"
    return (start, end, dur, schema, value, unit, value2, unit2, _source(h), h.get("uuid"))


def check_csv_header(header_line):
    """The csv export's first data line must be the known header row."""
    got = header_line.rstrip("\r\n")
    if got not in (CSV_HEADER, CSV_HEADER_NO_BODY):
        raise ManifestError(f"the csv export's header row is {got!r}, not {CSV_HEADER!r}; update the client")


def csv_row(line):
    """One csv export row as a row tuple in COLUMNS order (times as strings)."""
    rec = next(csv.reader([line.rstrip("\r\n")]))
    if len(rec) not in (9, 10):
        raise ManifestError(f"a csv export row has {len(rec)} fields, not 10 (or 9, before the body column)")
    # The body column (a schema without a typed model) carries no value.
    uuid, schema, time, end_time, value, unit, value2, unit2, source = [x if x != "" else None for x in rec[:9]]
    return (time, end_time, None, schema, value, unit, value2, unit2, unguard(source), uuid)


def unguard(cell):
    """The text of a csv cell without the vault's formula guard (export/csv.go sourceCell).

    The vault writes a leading "'" before a cell whose text, after leading
    spaces, starts with '=', '+', '-' or '@', or that started with a tab or
    a carriage return (which, like every control, it writes as a space). One
    such "'" is removed, so the frame's source is the same in every format.
    A source that itself began with "'" and then a space or one of those
    characters is read as guarded: the csv cannot tell the two apart.
    """
    if cell is None or not cell.startswith("'"):
        return cell
    rest = cell[1:]
    if rest.startswith(" ") or rest.lstrip(" ")[:1] in ("=", "+", "-", "@"):
        return rest
    return cell


# FHIR LOINC codes (DESIGN.md) back to OMH schemas, for an Observation that
# does not name its schema.
_LOINC_SCHEMA = {
    "99504-3": "omh:blood-glucose:4.0", "105272-9": "omh:blood-glucose:4.0", "41653-7": "omh:blood-glucose:4.0",
    "2339-0": "omh:blood-glucose:4.0", "2345-7": "omh:blood-glucose:4.0", "14749-6": "omh:blood-glucose:4.0",
    "8867-4": "omh:heart-rate:2.0", "55423-8": "omh:step-count:3.0", "85354-9": "omh:blood-pressure:4.0",
    "29463-7": "omh:body-weight:3.0", "59408-5": "omh:oxygen-saturation:2.0", "2708-6": "omh:oxygen-saturation:2.0",
    "9279-1": "omh:respiratory-rate:2.0", "8310-5": "omh:body-temperature:4.0",
    "14743-9": "omh:blood-glucose:4.0", "15074-8": "omh:blood-glucose:4.0", "93832-4": "omh:sleep-episode:1.1",
}
_SYSTOLIC, _DIASTOLIC = "8480-6", "8462-4"


def _codes(concept):
    return [c.get("code") for c in (concept or {}).get("coding", []) if isinstance(c, dict)]


def _qty(q):
    if not isinstance(q, dict):
        return None, None
    return q.get("value"), q.get("unit") or q.get("code")


def fhir_row(line):
    """One FHIR R4 Observation (a JSON line) as a row tuple in COLUMNS order (times as strings)."""
    o = json.loads(line)
    schema = None
    for ident in o.get("identifier") or []:
        if isinstance(ident, dict) and str(ident.get("system", "")).endswith("schema"):
            schema = ident.get("value")
    for tag in (o.get("meta") or {}).get("tag", []) or []:
        if schema is None and isinstance(tag, dict) and str(tag.get("code", "")).startswith("omh:"):
            schema = tag["code"]
    for c in (o.get("code") or {}).get("coding", []):
        # A schema without a typed model is coded with its schema id.
        if schema is None and isinstance(c, dict) and c.get("system") == "https://w3id.org/openmhealth":
            schema = c.get("code")
    if schema is None:
        for c in _codes(o.get("code")):
            if c in _LOINC_SCHEMA:
                schema = _LOINC_SCHEMA[c]
                break
    if schema is None and str((o.get("code") or {}).get("text", "")).startswith("Glucose"):
        schema = "omh:blood-glucose:4.0"  # glucose in a specimen LOINC has no code for
    value, unit = _qty(o.get("valueQuantity"))
    value2 = unit2 = None
    for comp in o.get("component") or []:
        cs = _codes(comp.get("code"))
        if _SYSTOLIC in cs:
            value, unit = _qty(comp.get("valueQuantity"))
        elif _DIASTOLIC in cs:
            value2, unit2 = _qty(comp.get("valueQuantity"))
    start = end = None
    if o.get("effectiveDateTime"):
        start = o["effectiveDateTime"]
    elif isinstance(o.get("effectivePeriod"), dict):
        start, end = o["effectivePeriod"].get("start"), o["effectivePeriod"].get("end")
    elif o.get("effectiveInstant"):
        start = o["effectiveInstant"]
    if schema == "omh:sleep-episode:1.1":
        # As the omh and csv frames have it: value is the episode's length,
        # value2 the Observation's quantity (the total sleep time, or the
        # length again when the point gave none).
        value2, unit2 = value, unit
        value = unit = None
        t0, t1 = times.instant(start), times.instant(end)
        if t0 is not None and t1 is not None:
            value, unit = (t1 - t0) / 60e9, "min"
    uuid = None
    for ident in o.get("identifier") or []:
        if isinstance(ident, dict) and str(ident.get("system", "")).startswith("urn:ietf:rfc:3986"):
            uuid = str(ident.get("value", "")).removeprefix("urn:uuid:")
    if uuid is None:
        uuid = o.get("id")
    source = None
    dev = o.get("device")
    if isinstance(dev, dict):
        source = dev.get("display")
    return (start, end, None, schema, value, unit, value2, unit2, source, uuid)


def _timestamps(texts):
    """RFC 3339 texts as a datetime64[ns, UTC] Series (exact to the nanosecond; NaT where there is no time)."""
    out = []
    for s in texts:
        ns = times.instant(s)
        if ns is not None and not _PD_MIN <= ns <= _PD_MAX:
            raise ExportFormatError(f"a reading's time {s!r} is outside what pandas can hold (the years 1677 to 2262)")
        out.append(ns)
    return pd.to_datetime(pd.Series(pd.array(out, dtype="Int64")), unit="ns", utc=True)


_PD_MIN, _PD_MAX = pd.Timestamp.min.value, pd.Timestamp.max.value


def to_frame(rows):
    """A typed DataFrame from row tuples (start, end, duration_s, schema, value, unit, value2, unit2, source, uuid)."""
    cols = list(zip(*rows)) if rows else [()] * 10
    start, end, dur, schema, value, unit, value2, unit2, source, uuid = cols
    time, end_time = _timestamps(start), _timestamps(end)
    if any(d is not None for d in dur):
        d = pd.Series([pd.Timedelta(seconds=x) if x is not None else pd.NaT for x in dur], dtype="timedelta64[ns]")
        end_time = end_time.where(end_time.notna(), time + d)

    def num(xs):
        return pd.to_numeric(pd.Series(xs, dtype="object"), errors="coerce").astype("float64")

    def text(xs):
        return pd.Series(xs, dtype="object").astype("string")

    df = pd.DataFrame({
        "time": time.astype("datetime64[ns, UTC]"),
        "end_time": end_time.astype("datetime64[ns, UTC]"),
        "schema": text(schema),
        "value": num(value),
        "unit": text(unit),
        "value2": num(value2),
        "unit2": text(unit2),
        "source": text(source),
        "uuid": text(uuid),
    }, columns=COLUMNS)
    return df.reset_index(drop=True)
