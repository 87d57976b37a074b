"""Archives at fsspec URLs: opening, listing and fetching objects, each named literally.

Object keys are data, never patterns: every fetch and existence check here names one object
literally, so ``IMG[0001].jpg`` or ``a*b?.jpg`` is that file and nothing else (fsspec's
``cat``, ``rm``, ``mv`` and ``glob`` expand ``[``, ``*``, ``?`` and ``{``; they are not used on
keys). Only a URL that names nothing literally is taken as a glob, when listing."""

from __future__ import annotations

import os
import re
import time

import fsspec
from fsspec.implementations.local import LocalFileSystem

from anpr_core.errors import ImageError
from anpr_jobs.storage.images import MAX_IMAGE_BYTES, too_large_file

# --- Archives at fsspec URLs --------------------------------------------------------------

GLOB_CHARS = re.compile(r"[*?\[]")
FETCH_ATTEMPTS = 3  # a transient read failure is retried this many times in all


def open_url(url: str, storage_options: dict | None = None):
    """``(filesystem, path)`` for an fsspec URL or local path; storage options pass through.

    A fresh filesystem each time: fsspec's shared instances are keyed by the options alone, so
    one made earlier under another endpoint or credentials in the environment (or with a
    stale listing) would be reused silently.
    """
    return fsspec.core.url_to_fs(url, skip_instance_cache=True, **(storage_options or {}))


def is_local(fs) -> bool:
    """Whether ``fs`` is the local disk (where a rename makes a write atomic)."""
    return isinstance(fs, LocalFileSystem)


def full_url(fs, path: str) -> str:
    """The key a row names an object by: ``s3://bucket/key``, or an absolute local path."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def normalize_key(key: str) -> str:
    """The one form an image key is compared in: ``scheme://bucket/key`` with no duplicate
    slashes, or, for a local file (a plain, relative or ``file://`` path), its absolute
    normalized path. Characters are kept as they are (no glob, no percent decoding)."""
    key = key.strip()
    scheme, sep, rest = key.partition("://")
    if sep and scheme not in ("file", "local"):
        return f"{scheme}://{re.sub('/{2,}', '/', rest)}"
    path = re.sub("/{2,}", "/", rest if sep else key)
    return os.path.normpath(os.path.join(os.getcwd(), path))


def hidden(relative: str) -> bool:
    """Whether a path relative to a listing root has a hidden part (``.name``)."""
    return any(part.startswith(".") for part in relative.split("/"))


def list_objects(url: str, storage_options: dict | None = None) -> tuple[object, dict, str]:
    """``(filesystem, {path: info}, root)`` of what ``url`` names: a file is itself, a folder or
    prefix every object under it, and only a URL that names nothing literally and holds
    ``*``, ``?`` or ``[`` is a glob. FileNotFoundError when nothing is there."""
    fs, path = open_url(url, storage_options)
    if fs.isfile(path):
        return fs, {path: fs.info(path)}, path.rsplit("/", 1)[0]
    if fs.isdir(path):
        return fs, fs.find(path, detail=True), path.rstrip("/")
    if GLOB_CHARS.search(path):
        found = fs.glob(path, detail=True)
        if found:
            return fs, found, path[: GLOB_CHARS.search(path).start()].rsplit("/", 1)[0]
    raise FileNotFoundError(f"nothing at {url}: no such folder, prefix or file")


def list_images(url: str, storage_options: dict | None = None) -> list[tuple[str, int | None]]:
    """Every object at ``url`` (``list_objects``) as sorted ``(path, size)`` pairs, whatever
    its extension (hidden names aside). FileNotFoundError when nothing is there."""
    try:
        fs, found, root = list_objects(url, storage_options)
    except FileNotFoundError:
        raise FileNotFoundError(f"no images at {url}: no such folder, prefix or file") from None
    objects = [
        (name, info.get("size"))
        for name, info in found.items()
        if info.get("type") != "directory" and not hidden(name[len(root) :].lstrip("/"))
    ]
    return sorted(objects)


def read_manifest(manifest_url: str, input_url: str, storage_options: dict | None = None):
    """The ``(path, None)`` pairs a CSV or Parquet manifest lists, relative keys resolved
    against ``input_url``: the column ``image_key``, ``key`` or else the first one."""
    import pandas as pd

    fs, path = open_url(manifest_url, storage_options)
    with fs.open(path, "rb") as handle:
        if path.endswith(".parquet"):
            table = pd.read_parquet(handle)
        else:
            table = pd.read_csv(handle, dtype=str, keep_default_na=False)
    column = next((c for c in ("image_key", "key") if c in table.columns), table.columns[0])
    input_fs, root = open_url(input_url, storage_options)
    root = root.rstrip("/")
    paths = []
    for key in table[column].astype(str).str.strip():
        if not key:
            continue
        if "://" in key:
            paths.append(input_fs._strip_protocol(normalize_key(key)))
        elif is_local(input_fs) and os.path.isabs(key):
            paths.append(normalize_key(key))
        else:
            paths.append(f"{root}/{key.lstrip('/')}")
    return [(p, None) for p in sorted(set(paths))]


def fetch_all(
    fs,
    paths: list[str],
    attempts: int = FETCH_ATTEMPTS,
    max_bytes: int = MAX_IMAGE_BYTES,
    sizes: dict[str, int | None] | None = None,
) -> dict[str, bytes | Exception]:
    """The bytes of each path, or the error that kept it from being read, fetched in one batch
    (concurrently on object storage); each path is one object, named literally, and no failure
    raises. An object whose size ``sizes`` does not give (a manifest's keys) is read up to
    ``max_bytes`` + 1 bytes only, so an oversize one costs no more memory than the limit.
    Failures other than a missing object are retried with a short backoff, on a filesystem
    that does not retry itself (s3fs does, ``retries`` times with its own backoff)."""
    sizes = sizes or {}
    if getattr(fs, "retries", 0):
        attempts = 1
    results: dict[str, bytes | Exception] = {}
    pending = list(paths)
    for attempt in range(attempts):
        if not pending:
            break
        if attempt:
            time.sleep(0.2 * 2**attempt)
        ends = [None if sizes.get(p) is not None else max_bytes + 1 for p in pending]
        try:
            got = fs.cat_ranges(pending, None, ends, on_error="return")
        except Exception as exc:  # noqa: BLE001 - a failed batch is an error per path
            got = [exc] * len(pending)
        results.update(zip(pending, map(empty_if_unsatisfiable, got), strict=True))
        pending = [p for p in pending if transient(results[p])]
    return {p: checked_size(results.get(p, OSError("not returned")), max_bytes) for p in paths}


def empty_if_unsatisfiable(result: bytes | Exception) -> bytes | Exception:
    """A ranged fetch's result, with S3's "range not satisfiable" as the empty object it
    means: a range that starts at byte 0 is unsatisfiable only for an object of no bytes."""
    if isinstance(result, OSError) and "range is not satisfiable" in str(result).lower():
        return b""
    return result


def checked_size(result: bytes | Exception, max_bytes: int) -> bytes | Exception:
    """A fetch result, with bytes over ``max_bytes`` turned into the too_large error."""
    if isinstance(result, bytes | bytearray) and len(result) > max_bytes:
        return too_large_file()
    return result


def fetch_one(key: str, storage_options: dict | None = None) -> bytes:
    """The bytes of the object or file at ``key`` (a URL or path, named literally);
    ImageError with a one-line reason when it cannot be fetched or is over the size limit."""
    try:
        fs, path = open_url(key, storage_options)
    except (OSError, ValueError, ImportError) as exc:
        raise ImageError(f"unreadable: {key}: {first_line(exc)}") from exc
    data = fetch_all(fs, [path])[path]
    if isinstance(data, Exception):
        raise fetch_error(data)
    return bytes(data)


def transient(result) -> bool:
    """Whether a fetch result is a failure worth retrying (not bytes, not a missing object)."""
    return isinstance(result, Exception) and not isinstance(
        result, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError
    )


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, else its type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def fetch_error(exc: Exception) -> ImageError:
    """The ImageError of a failed fetch, with a one-line reason (no credentials, no stack)."""
    if isinstance(exc, ImageError):
        return exc
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return ImageError("missing: no such object")
    if isinstance(exc, IsADirectoryError):
        return ImageError("not_a_file: the key is a folder")
    if isinstance(exc, PermissionError):
        return ImageError("forbidden: access denied")
    message = first_line(exc) if str(exc).strip() else ""
    return ImageError(f"unreadable: {type(exc).__name__} {message}"[:300].strip())
