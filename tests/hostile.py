"""Generators of hostile and careless inputs: images in every mode, header bombs in every format, zips that
fail in every way. Small files, made on the spot; shared by the core tests, the page tests, the browser test
and the memory benchmark."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

# Markdown and HTML that must show literally wherever a user or a file controls the text.
MARKDOWN = ("[Click here](https://example.com/x) ![t](https://example.com/t.png) **b** <b>html</b> "
            ":red[red] :smile: :material/home: www.example.com a@example.com $x^2$ `code` ~~gone~~")


def encode(image: Image.Image, format_: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_, **options)
    return buffer.getvalue()


def gradient(mode: str, size: tuple[int, int] = (48, 32)) -> Image.Image:
    """An image of ``mode`` whose values vary over its whole range (so clipping or a bad rescale shows)."""
    width, height = size
    ramp = np.linspace(0, 1, width * height).reshape(height, width)
    if mode in ("I;16", "I;16B", "I;16L"):
        return Image.fromarray((ramp * 65535).astype(np.uint16)).convert(mode) if mode != "I;16" \
            else Image.fromarray((ramp * 65535).astype(np.uint16))
    if mode == "I":
        return Image.fromarray((ramp * 2_000_000 - 1_000_000).astype(np.int32), "I")
    if mode == "F":
        return Image.fromarray((ramp * 6 - 3).astype(np.float32), "F")
    grey = Image.fromarray((ramp * 255).astype(np.uint8), "L")
    if mode == "P":
        return grey.convert("RGB").quantize(64)
    if mode == "PA":
        return grey.convert("RGB").quantize(64).convert("PA")
    rgb = Image.merge("RGB", (grey, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.new("L", size, 90)))
    if mode == "LAB":
        return _lab(rgb)
    if mode == "La":
        return rgb.convert("LA").convert("La")
    return rgb.convert(mode)


def _lab(rgb: Image.Image) -> Image.Image:
    from PIL import ImageCms

    transform = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    return ImageCms.applyTransform(rgb, transform)


# (mode of the file, format it is stored in): every mode Pillow decodes from the formats we accept.
FILE_MODES = [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"),
              ("I", "TIFF"), ("I;16", "PNG"), ("I;16B", "TIFF"), ("I;16", "TIFF"), ("F", "TIFF"), ("PA", "TIFF"),
              ("CMYK", "TIFF"), ("CMYK", "JPEG"), ("YCbCr", "TIFF"), ("LAB", "TIFF"), ("RGB", "JPEG"),
              ("L", "JPEG"), ("RGBA", "WEBP"), ("RGB", "WEBP"), ("P", "GIF"), ("1", "BMP"), ("L", "BMP"),
              ("RGB", "BMP"), ("RGBA", "TIFF"), ("LA", "TIFF")]
EXTENSION = {"PNG": ".png", "TIFF": ".tiff", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}

# Every mode Pillow can hold in memory (some no accepted format decodes to): display copies must cope too.
MEMORY_MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I",
                "I;16", "I;16B", "I;16L", "F"]


def image_file(mode: str, format_: str, size: tuple[int, int] = (48, 32)) -> bytes:
    """A small file of ``format_`` that decodes to ``mode``."""
    image = gradient(mode, size)
    options = {"lossless": True} if format_ == "WEBP" else {}
    if mode == "P" and format_ == "PNG":
        options["transparency"] = 0
    return encode(image, format_, **options)


# Header bombs: a small valid file whose header is patched to claim a huge size --------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_stream(width: int, height: int, chunk_rows: int = 256) -> bytes:
    """A real, complete 1-bit PNG of ``width`` × ``height`` (all black), compressed row by row: tiny on disk, however
    many pixels it decodes to."""
    row = b"\0" + b"\0" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = bytearray()
    block = row * chunk_rows
    for start in range(0, height, chunk_rows):
        data += compressor.compress(block if start + chunk_rows <= height else row * (height - start))
    data += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", bytes(data)) + \
        _png_chunk(b"IEND", b"")


def _claim_png(width: int, height: int) -> bytes:
    small = encode(Image.new("L", (8, 8)))
    header = small[16:29]
    patched = struct.pack(">II", width, height) + header[8:]
    return small[:8] + _png_chunk(b"IHDR", patched) + small[33:]


def _claim_jpeg(width: int, height: int) -> bytes:
    small = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
    sof = small.index(b"\xff\xc0")
    small[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(small)


def _claim_gif(width: int, height: int) -> bytes:
    small = bytearray(encode(Image.new("P", (8, 8)), "GIF"))
    small[6:10] = struct.pack("<HH", width, height)
    descriptor = small.index(b"\x2c", 13)
    small[descriptor + 5:descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(small)


def _claim_bmp(width: int, height: int) -> bytes:
    small = bytearray(encode(Image.new("RGB", (8, 8)), "BMP"))
    small[18:26] = struct.pack("<ii", width, height)
    return bytes(small)


def _claim_tiff(width: int, height: int) -> bytes:
    small = bytearray(encode(Image.new("L", (8, 8)), "TIFF"))
    assert small[:2] == b"II"
    offset = struct.unpack("<I", small[4:8])[0]
    count = struct.unpack("<H", small[offset:offset + 2])[0]
    for i in range(count):
        entry = offset + 2 + 12 * i
        tag, kind = struct.unpack("<HH", small[entry:entry + 4])
        if tag in (256, 257):
            value = width if tag == 256 else height
            small[entry + 2:entry + 12] = struct.pack("<HII", 4, 1, value)  # LONG
    return bytes(small)


def _claim_webp(width: int, height: int) -> bytes:
    small = bytearray(encode(Image.new("RGB", (8, 8)), "WEBP", lossless=True))
    start = small.index(b"VP8L") + 8
    assert small[start] == 0x2F
    bits = struct.unpack("<I", small[start + 1:start + 5])[0]
    bits = (bits & ~0x0FFFFFFF) | ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14)
    small[start + 1:start + 5] = struct.pack("<I", bits)
    return bytes(small)


CLAIMS: dict[str, Callable[[int, int], bytes]] = {"PNG": _claim_png, "JPEG": _claim_jpeg, "GIF": _claim_gif,
                                                  "BMP": _claim_bmp, "TIFF": _claim_tiff, "WEBP": _claim_webp}


def claims(format_: str, width: int = 20000, height: int = 20000) -> bytes:
    """A file of ``format_`` a few hundred bytes long whose header claims ``width`` × ``height`` pixels."""
    return CLAIMS[format_](min(width, 16384) if format_ == "WEBP" else width,
                           min(height, 16384) if format_ == "WEBP" else height)


def truncated(format_: str) -> bytes:
    """A noisy image of ``format_`` cut in the middle."""
    noise = Image.effect_noise((160, 120), 60).convert("RGB")
    whole = encode(noise if format_ != "GIF" else noise.quantize(64), format_,
                   **({"lossless": True} if format_ == "WEBP" else {}))
    return whole[: len(whole) // 2]


# Zips ----------------------------------------------------------------------------------------------------------


def png(colour: str = "red", size: tuple[int, int] = (12, 10)) -> bytes:
    return encode(Image.new("RGB", size, colour))


def good_members(prefix: str = "", per_class: int = 3, names: tuple[str, str] = ("cat", "dog")) -> dict[str, bytes]:
    colours = ("red", "blue")
    return {f"{prefix}{name}/{i}.png": png(colour, (12 + i, 10)) for name, colour in zip(names, colours, strict=True)
            for i in range(per_class)}


def make_zip(members: dict[str, bytes] | list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED,
             symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    items = list(members.items()) if isinstance(members, dict) else members
    import warnings

    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        for name, payload in items:
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.compress_type = compression
            archive.writestr(info, payload)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _patch_method(payload: bytes, method: int) -> bytes:
    """Every member's compression method set to ``method`` (in local headers and the central directory)."""
    data = bytearray(payload)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        position = data.find(signature)
        while position != -1:
            data[position + offset:position + offset + 2] = struct.pack("<H", method)
            position = data.find(signature, position + 4)
    return bytes(data)


def _mark_encrypted(payload: bytes) -> bytes:
    """Set the "encrypted" flag of every member (zipfile cannot write encrypted members; readers trust the flag)."""
    data = bytearray(payload)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = data.find(signature)
        while position != -1:
            data[position + offset] |= 0x1
            position = data.find(signature, position + 4)
    return bytes(data)


def _first_member_data(data: bytearray) -> int:
    """Where the first member's (compressed) data starts: after its local header, name and extra field."""
    header = data.find(b"PK\x03\x04")
    name_length, extra_length = struct.unpack("<HH", data[header + 26:header + 30])
    return header + 30 + name_length + extra_length


def _corrupt_stored_data(payload: bytes) -> bytes:
    """Flip a byte inside the first stored member's data: the CRC no longer matches."""
    data = bytearray(payload)
    data[_first_member_data(data) + 20] ^= 0xFF
    return bytes(data)


def _corrupt_local_header(payload: bytes) -> bytes:
    """Break the signature of the second member's local header."""
    data = bytearray(payload)
    second = data.find(b"PK\x03\x04", data.find(b"PK\x03\x04") + 4)
    data[second:second + 4] = b"XXXX"
    return bytes(data)


def _corrupt_deflate(payload: bytes) -> bytes:
    """Overwrite the start of the first member's deflate stream: it no longer decompresses."""
    data = bytearray(payload)
    start = _first_member_data(data)
    data[start:start + 8] = b"\xff" * 8
    return bytes(data)


def bad_zips() -> dict[str, tuple[bytes, str]]:
    """Every way a zip is refused as a whole: name → (payload, words the refusal contains)."""
    good = good_members()
    long_name = "cat/" + "x" * 300 + ".png"
    return {
        "not a zip": (b"PK\x03\x04 this is no zip at all", "not a readable zip"),
        "empty file": (b"", "not a readable zip"),
        "cut in half": (make_zip(good)[:200], "not a readable zip"),
        "file and folder": (make_zip({**good, "cat/0.png/inner.png": png()}), "both a file and a folder"),
        "name over 255 bytes": (make_zip({**good, long_name: png()}), "longer than 255"),
        "encrypted member": (_mark_encrypted(make_zip(good)), "encrypted"),
        "unknown compression": (_patch_method(make_zip(good, zipfile.ZIP_STORED), 99), "compression method"),
        "bad CRC": (_corrupt_stored_data(make_zip(good, zipfile.ZIP_STORED)), "cannot be read"),
        "corrupt local header": (_corrupt_local_header(make_zip(good)), "cannot be read"),
        "corrupt deflate data": (_corrupt_deflate(make_zip(good)), "cannot be read"),
        "duplicate names": (make_zip([*good.items(), ("cat/0.png", png("green"))]), "two members"),
        "path escapes": (make_zip({**good, "../evil.png": png()}), "outside"),
        "absolute path": (make_zip({**good, "/tmp/evil.png": png()}), "outside"),
        "symbolic link": (make_zip(good, symlinks=("cat/link.png",)), "symbolic link"),
        "zip bomb": (make_zip({**good, "cat/bomb.png": b"\0" * 5_000_000}), "zip bomb"),
        "no images": (make_zip({"notes.txt": b"hello"}), "no images"),
    }


def bad_members() -> dict[str, tuple[str, bytes]]:
    """Files a zip or a folder may hold that are left out when the set is scanned: label → (member path, payload)."""
    text = b"this is a text file, not a picture"
    return {
        "text named .png": ("cat/notes.png", text),
        "truncated JPEG": ("cat/cut.jpg", truncated("JPEG")),
        "PNG named .jpg": ("dog/wrong.jpg", png()),
        "20000×20000 header": ("dog/huge.png", claims("PNG")),
        "13000×13000 PNG": ("dog/real-huge.png", png_stream(13000, 13000)),
        "empty file": ("cat/empty.png", b""),
        "GIF bomb": ("cat/bomb.gif", claims("GIF")),
        "TIFF bomb": ("dog/bomb.tiff", claims("TIFF")),
        "WebP bomb": ("dog/bomb.webp", claims("WEBP")),
    }
