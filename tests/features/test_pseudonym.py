"""Pseudonyms: keyed, stable, never the raw value, idempotent on canonical logs."""

from __future__ import annotations

import pandas as pd

from features.pseudonym import is_pseudonym, pseudonym, pseudonymise

KEY = b"k" * 32


def test_pseudonyms_are_keyed_and_name_their_key() -> None:
    a = pseudonym("001234567890", KEY, "k1")
    assert a.startswith("k1:") and is_pseudonym(a)
    assert a == pseudonym("001234567890", KEY, "k1")
    assert a != pseudonym("001234567890", b"other-key-000000", "k1")
    assert "001234567890" not in a


def test_column_keeps_nulls_and_blanks_null() -> None:
    out = pseudonymise(pd.Series(["0101", None, " ", "0101"]), KEY, "k1")
    assert out.isna().tolist() == [False, True, True, False]
    assert out.iloc[0] == out.iloc[3]


def test_already_pseudonymised_values_pass_unchanged() -> None:
    once = pseudonymise(pd.Series(["0101", "8300112233"]), KEY, "k1")
    twice = pseudonymise(once, KEY, "k2")
    assert twice.tolist() == once.tolist()
    assert not is_pseudonym("0101") and not is_pseudonym("k1:xyz")
