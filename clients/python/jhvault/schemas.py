"""The schemas the vault stores, and the short names the client accepts."""

# Canonical ids (omh/schema.go).
CANONICAL = {
    "blood-glucose": "omh:blood-glucose:4.0",
    "heart-rate": "omh:heart-rate:2.0",
    "step-count": "omh:step-count:3.0",
    "blood-pressure": "omh:blood-pressure:4.0",
    "body-weight": "omh:body-weight:3.0",
    "oxygen-saturation": "omh:oxygen-saturation:2.0",
    "respiratory-rate": "omh:respiratory-rate:2.0",
    "body-temperature": "omh:body-temperature:4.0",
    "physical-activity": "omh:physical-activity:1.2",
    "sleep-episode": "omh:sleep-episode:1.1",
}

ALIASES = {
    "glucose": "blood-glucose",
    "cgm": "blood-glucose",
    "steps": "step-count",
    "hr": "heart-rate",
    "bp": "blood-pressure",
    "weight": "body-weight",
    "spo2": "oxygen-saturation",
    "temperature": "body-temperature",
    "sleep": "sleep-episode",
}


def canonical(schema):
    """'blood-glucose', 'omh:blood-glucose' or 'omh:blood-glucose:4.0' -> 'omh:blood-glucose:4.0'.

    A fully versioned id is passed through as given (the vault normalises
    legacy versions and answers unknown_schema for the rest).
    """
    s = str(schema).strip()
    parts = s.split(":")
    if len(parts) == 3:
        return s
    if len(parts) == 2 and parts[0] == "omh":
        s = parts[1]
    elif len(parts) != 1:
        raise ValueError(f"schema {schema!r} is not a name such as 'blood-glucose' or an id such as 'omh:blood-glucose:4.0'")
    s = ALIASES.get(s.lower(), s.lower())
    if s not in CANONICAL:
        raise ValueError(f"unknown schema {schema!r}; the vault stores {', '.join(CANONICAL)}")
    return CANONICAL[s]


def short_name(schema_id):
    """'omh:blood-glucose:4.0' -> 'blood-glucose'."""
    parts = str(schema_id).split(":")
    return parts[1] if len(parts) >= 2 else schema_id


def covers(grant_schema, schema_id):
    """Whether a grant's schema ('ns:name' covers every version, 'ns:name:ver' one) covers a canonical id."""
    g = grant_schema.split(":")
    s = schema_id.split(":")
    if len(g) == 2:
        return s[:2] == g
    return g == s
