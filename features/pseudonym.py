"""Keyed-hash pseudonyms for applicant and submitter identities.

A pseudonym is ``<key id>:<first 20 hex digits of HMAC-SHA256(key, value)>``: stable for a
key, not reversible without the key, and it names the key that made it so that pseudonyms
made before a key rotation can still be told apart and resolved.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import numpy as np
import pandas as pd

DIGEST_HEX = 20
#: what a pseudonym looks like; such values are already pseudonymised and pass unchanged
#: (no raw identifier - citizen id, tax code, name - has this shape).
PSEUDONYM = re.compile(rf"^[A-Za-z0-9_-]{{1,16}}:[0-9a-f]{{{DIGEST_HEX}}}$")


def is_pseudonym(value: str) -> bool:
    """Whether ``value`` already is a pseudonym (of any key id)."""
    return PSEUDONYM.match(value) is not None


def pseudonym(value: str, key: bytes, key_id: str) -> str:
    """The pseudonym of one raw identifier."""
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:DIGEST_HEX]
    return f"{key_id}:{digest}"


def pseudonymise(values: pd.Series, key: bytes, key_id: str) -> pd.Series:
    """Pseudonyms of a column of raw identifiers (nulls and blanks stay null).

    Hashes each distinct value once, so the cost follows the number of identities, not rows.
    Values that already are pseudonyms (canonical logs written by GiamSat itself, such as
    the simulator's) pass unchanged, so re-ingesting a canonical log is idempotent.
    """
    raw = values.astype("string").str.strip()
    raw = raw.mask(raw.eq(""))
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    mapped = np.array(
        [u if is_pseudonym(str(u)) else pseudonym(str(u), key, key_id) for u in uniques],
        dtype=object,
    )
    out = np.full(len(raw), None, dtype=object)
    present = codes >= 0
    out[present] = mapped[codes[present]]
    return pd.Series(out, index=values.index, dtype="string", name=values.name)
