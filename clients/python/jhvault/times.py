"""RFC 3339 date-times as exact instants, the way the vault reads them.

A port of the vault's ``omh.parseDateTime`` (RFC 3339 section 5.6, offset
required, a leap second only as the last second of a UTC day, becoming the
first instant of the next minute) and ``subtractDuration`` (calendar months
and years for whole ``Mo`` and ``yr``, else a fixed length), on Python
integers: an instant is nanoseconds since 1970-01-01T00:00:00Z, with no
range limit, so a window bound such as 9999-12-31 compares as the vault
compares it, where pandas would overflow.
"""

import functools
import math
import re

NS = 1_000_000_000

# omh.unitNanos: a day is 24 hours; fractional months and years are
# Gregorian averages.
UNIT_NANOS = {
    "ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "sec": 1e9, "min": 60e9, "h": 3600e9,
    "d": 86400e9, "wk": 7 * 86400e9, "Mo": 2629746e9, "yr": 31556952e9,
}
_MAX_INT64 = (1 << 63) - 1


def _days_in(month, year):
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm; any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    """(year, month, day) of a day count since 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|([+-])(\d{2}):(\d{2}))",
                      re.ASCII)


@functools.lru_cache(maxsize=1024)
def _parse(s):
    m = _RFC3339.fullmatch(s)
    if m is None:
        return None
    year, month, day, hour, minute, sec = (int(x) for x in m.group(1, 2, 3, 4, 5, 6))
    if not (1 <= month <= 12 and 1 <= day <= _days_in(month, year) and hour <= 23 and minute <= 59 and sec <= 60):
        return None
    frac = m.group(7)
    nsec = int(frac[:9].ljust(9, "0")) if frac else 0  # digits past the ninth are dropped, as Go does
    offset = 0
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        offset = (oh * 60 + om) * 60 * (-1 if m.group(9) == "-" else 1)
    if sec == 60:
        utc_min = ((hour * 60 + minute) * 60 - offset) // 60 % 1440
        if utc_min != 23 * 60 + 59:
            return None
    local = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + sec
    return (local - offset) * NS + nsec, offset


def parse(s):
    """(instant_ns, offset_s) of an RFC 3339 date-time, or None if s is not one (omh.parseDateTime)."""
    if not isinstance(s, str):
        return None
    return _parse(s) if len(s) <= 64 else _parse.__wrapped__(s)  # a long fraction: valid, but not cached


def instant(s):
    """An RFC 3339 date-time as integer nanoseconds since the epoch, or None."""
    p = parse(s)
    return None if p is None else p[0]


def _go_round(x):
    """Go's math.Round: half away from zero."""
    a = abs(x)
    q = math.floor(a)
    if a - q >= 0.5:
        q += 1
    return int(math.copysign(q, x)) if q else 0


def _year_of(ns, offset):
    return civil_from_days((ns // NS + offset) // 86400)[0]


def subtract(end, value, unit):
    """end - duration as omh.subtractDuration does: end is parse()'s (ns, offset); the result in ns, or None."""
    if unit not in UNIT_NANOS or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    if not math.isfinite(v):
        return None
    ns, offset = end
    if unit in ("Mo", "yr") and v == math.trunc(v) and abs(v) <= 12 * 10000:
        n = int(v)
        # time.AddDate on the civil time in the end's own offset, normalising an overflowing day.
        secs, frac = divmod(ns, NS)
        local = secs + offset
        days, tod = divmod(local, 86400)
        y, m, d = civil_from_days(days)
        if unit == "yr":
            y -= n
        else:
            m -= n
        y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
        local = (days_from_civil(y, m, 1) + d - 1) * 86400 + tod
        t = (local - offset) * NS + frac
    else:
        if not math.isfinite(v * UNIT_NANOS[unit]):
            return None
        d = _go_round(v * UNIT_NANOS[unit])
        if abs(d) > _MAX_INT64 / 2:
            return None
        t = ns - d
    if not 0 <= _year_of(t, offset) <= 9999:
        return None
    return t


def format_utc(ns):
    """An instant as RFC 3339 UTC with a fraction only when it is not zero (the csv export's form)."""
    secs, frac = divmod(ns, NS)
    days, tod = divmod(secs, 86400)
    y, m, d = civil_from_days(days)
    s = f"{y:04d}-{m:02d}-{d:02d}T{tod // 3600:02d}:{tod // 60 % 60:02d}:{tod % 60:02d}"
    if frac:
        s += f".{frac:09d}".rstrip("0")
    return s + "Z"
