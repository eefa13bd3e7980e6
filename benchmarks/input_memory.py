"""Peak memory of large and hostile inputs on their way in: uploads to classify, zips and folders to train on.

Each case runs in a fresh process (so that memory freed by one case cannot hide the next one's), after the
modules are imported and the file is read: the figures are what the input itself adds. Peak RSS comes from
the kernel (``VmHWM``, reset before the case through ``/proc/self/clear_refs``); tracemalloc's peak covers
Python and NumPy allocations only (Pillow's and torch's buffers are not traced), so RSS is the figure that
counts. Usage: ``python -m benchmarks.input_memory [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import io
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 400  # no accepted input may add more than this


# Inputs, written to files by the parent process --------------------------------------------------------------


def _rgba_png(path: Path) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (6000, 6000), (30, 90, 160, 200))
    draw = ImageDraw.Draw(image)
    for i in range(0, 6000, 500):
        draw.ellipse((i, i, i + 900, i + 600), fill=(250, 200, 20, 255))
    image.save(path)


def _rgb_jpeg(path: Path) -> None:
    from PIL import Image

    Image.effect_noise((1500, 1500), 60).convert("RGB").resize((6000, 6000)).save(path, quality=90)


def _grey16_png(path: Path) -> None:
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 65535, 6000, dtype=np.float64).astype(np.uint16)
    Image.fromarray(np.tile(ramp, (6000, 1))).save(path)


def _float_tiff(path: Path) -> None:
    import numpy as np
    from PIL import Image

    ramp = np.linspace(-3, 3, 6000, dtype=np.float32)
    Image.fromarray(np.tile(ramp, (6000, 1)), "F").save(path, compression="tiff_adobe_deflate")


def _limit_png(path: Path) -> None:
    from PIL import Image

    side = int(40_000_000 ** 0.5)  # 6324: just within the pixel limit
    Image.new("L", (side, side), 128).save(path)


def _huge_png(path: Path) -> None:
    from tests import hostile

    path.write_bytes(hostile.png_stream(13000, 13000))


def _claim_png(path: Path) -> None:
    from tests import hostile

    path.write_bytes(hostile.claims("PNG", 20000, 20000))


def _zip_of_huge_pngs(path: Path) -> None:
    from tests import hostile

    members = {**hostile.good_members(), **{f"cat/big{i}.png": hostile.png_stream(13000, 13000) for i in range(3)}}
    path.write_bytes(hostile.make_zip(members))


def _zip_of_large_pngs(path: Path, count: int = 3) -> None:
    from tests import hostile

    buffer = io.BytesIO()
    _rgba_png_to(buffer)
    big = buffer.getvalue()
    members = {**hostile.good_members(), **{f"cat/large{i}.png": big for i in range(count)}}
    path.write_bytes(hostile.make_zip(members))


def _zip_of_many_large_pngs(path: Path) -> None:
    _zip_of_large_pngs(path, count=16)  # enough to be verified by parallel threads


def _rgba_png_to(buffer: io.BytesIO) -> None:
    from PIL import Image

    Image.new("RGBA", (6000, 6000), (30, 90, 160, 200)).save(buffer, format="PNG")


def _zip_bomb(path: Path) -> None:
    from tests import hostile

    path.write_bytes(hostile.make_zip({**hostile.good_members(), "cat/bomb.png": b"\0" * (500 << 20)}))


# What happens to each, in the measuring process ----------------------------------------------------------------


def _classify(path: Path) -> str:
    from core import imaging

    image, steps = imaging.open_image(path.read_bytes(), path.name)
    prepared = imaging.prepare(image, 256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return f"accepted: {len(steps) + len(prepared.steps)} steps, tensor {tuple(prepared.tensor.shape)}"


def _zip_then_scan(path: Path) -> str:
    from core import archives, data

    with tempfile.TemporaryDirectory() as folder:
        extracted = archives.extract_zip(io.BytesIO(path.read_bytes()), Path(folder) / "out")
        loaded = data.image_folder(extracted.root, size=224)
        first = loaded.train.image(0)
        return f"extracted; {len(loaded.rejected)} files left out, first training image {tuple(first.shape)}"


Case = tuple[str, Callable[[Path], None], str, Callable[[Path], str], bool]  # name, make, file, run, accepted
CASES: list[Case] = [
    ("6000×6000 RGBA PNG, classified", _rgba_png, "big.png", _classify, True),
    ("6000×6000 RGB JPEG, classified", _rgb_jpeg, "big.jpg", _classify, True),
    ("6000×6000 16-bit PNG, classified", _grey16_png, "big16.png", _classify, True),
    ("6000×6000 float TIFF, classified", _float_tiff, "float.tiff", _classify, True),
    ("6324×6324 L PNG (at the limit), classified", _limit_png, "limit.png", _classify, True),
    ("13000×13000 PNG, classified", _huge_png, "huge.png", _classify, False),
    ("20000×20000 PNG header, classified", _claim_png, "claim.png", _classify, False),
    ("zip of three 13000×13000 PNGs, extracted and scanned", _zip_of_huge_pngs, "huge.zip", _zip_then_scan, True),
    ("zip of three 6000×6000 RGBA PNGs, extracted, scanned, one read", _zip_of_large_pngs, "large.zip",
     _zip_then_scan, True),
    ("zip of sixteen 6000×6000 RGBA PNGs, extracted, scanned (2 threads), one read", _zip_of_many_large_pngs,
     "many.zip", _zip_then_scan, True),
    ("zip bomb (500 MB of zeros)", _zip_bomb, "bomb.zip", _zip_then_scan, False),
]


def _status() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            values[line.split(":")[0]] = int(line.split()[1])  # kB
    return values


def measure_here(name: str, path: Path) -> dict[str, object]:
    """Run one case in this process and measure what it adds (call in a fresh process)."""
    from core import archives, data, imaging  # noqa: F401 — imported before the baseline

    run = next(case[3] for case in CASES if case[0] == name)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current RSS
    before = _status()["VmRSS"]
    tracemalloc.start()
    start = time.perf_counter()
    try:
        outcome = run(path)
    except Exception as error:  # noqa: BLE001 — a refusal is an outcome here
        outcome = f"refused: {type(error).__name__}: {str(error)[:90]}"
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1]
    peak = _status()["VmHWM"]
    return {"case": name, "file_kb": round(path.stat().st_size / 1024), "outcome": outcome,
            "rss_mb": round((peak - before) / 1024, 1), "traced_mb": round(traced / 2**20, 1),
            "seconds": round(seconds, 2)}


def measure(names: list[str] | None = None, parallel: int = 2) -> list[dict[str, object]]:
    """Every case (or those named), each made here and measured in a fresh process, ``parallel`` at a time
    (each process measures only its own peak, so running side by side changes no figure, only the wall time)."""
    chosen = [case for case in CASES if not names or case[0] in names]
    with tempfile.TemporaryDirectory() as folder:

        def one(case: tuple) -> dict[str, object]:
            name, make, file_name, _run, accepted = case
            path = Path(folder) / file_name
            make(path)
            output = subprocess.run([sys.executable, "-m", "benchmarks.input_memory", "--case", name, str(path)],
                                    cwd=ROOT, capture_output=True, text=True, timeout=600, check=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            result["accepted_expected"] = accepted
            return result

        with concurrent.futures.ThreadPoolExecutor(max(parallel, 1)) as pool:
            return list(pool.map(one, chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help="case names to run")
    arguments = parser.parse_args()
    if arguments.case:
        print(json.dumps(measure_here(arguments.case, Path(arguments.path))))
        return
    results = measure(arguments.only)
    print(f"{'case':66} {'file':>9} {'peak RSS':>9} {'traced':>8} {'time':>6}  outcome")
    for r in results:
        print(f"{r['case']:66} {r['file_kb']:>6} KB {r['rss_mb']:>6} MB {r['traced_mb']:>5} MB {r['seconds']:>5}s  "
              f"{r['outcome']}")
    print(f"(limit for an accepted input: {LIMIT_MB} MB of peak RSS)")


if __name__ == "__main__":
    main()
