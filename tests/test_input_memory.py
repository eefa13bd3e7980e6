"""Peak memory of large and hostile inputs: no accepted one adds more than 400 MB, a refused one next to nothing.

Each case is made here and measured in a fresh process by ``benchmarks/input_memory.py`` (peak RSS from the
kernel; see there). A bound on memory, not a timing."""

from __future__ import annotations

import pytest

from benchmarks import input_memory

CASES = ["6000×6000 RGBA PNG, classified", "6000×6000 float TIFF, classified",
         "13000×13000 PNG, classified", "20000×20000 PNG header, classified",
         "zip of three 13000×13000 PNGs, extracted and scanned",
         "zip of three 6000×6000 RGBA PNGs, extracted, scanned, one read", "zip bomb (500 MB of zeros)"]


@pytest.mark.slow
def test_no_accepted_input_adds_more_than_400_mb() -> None:
    results = input_memory.measure(CASES)
    assert [r["case"] for r in results] == CASES
    table = "\n".join(f"{r['case']}: {r['rss_mb']} MB, {r['outcome']}" for r in results)
    for result in results:
        if result["accepted_expected"]:
            assert not str(result["outcome"]).startswith("refused"), table
            assert float(result["rss_mb"]) < input_memory.LIMIT_MB, table  # type: ignore[arg-type]
        else:
            assert str(result["outcome"]).startswith("refused"), table
            assert float(result["rss_mb"]) < 50, table  # type: ignore[arg-type]
    print(table)
