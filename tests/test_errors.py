"""How messages quote what a user or a file named (core.errors): bounded, escaped, a few at most."""

from __future__ import annotations

from core.errors import plain, quoted, quoted_list


def test_a_long_name_is_cut_in_the_middle_and_control_characters_are_escaped() -> None:
    text = quoted("a" * 1_000_000 + "END")
    assert len(text) < 100 and text.startswith("'aaa") and text.endswith("END'") and "…" in text
    assert quoted("x\n\x1b[1m") == repr("x\n\x1b[1m")  # short: whole, escaped
    assert "\x1b" not in quoted("\x1b" * 500)


def test_a_list_names_a_few_then_counts_the_rest() -> None:
    assert quoted_list(["a", "b"]) == "'a', 'b'"
    assert quoted_list([f"n{i}" for i in range(10)]) == "'n0', 'n1', 'n2', 'n3' and 6 more"
    assert len(quoted_list(["x" * 10**6] * 10**4)) < 500


def test_library_text_loses_terminal_codes_and_is_cut() -> None:
    assert plain("\x1b[1mWeightsUnpickler error: \x1b[0m bad\n\n  thing") == "WeightsUnpickler error: bad thing"
    assert len(plain("y" * 10**6, limit=50)) == 50
