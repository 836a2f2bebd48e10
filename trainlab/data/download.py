"""Fetching official dataset files: urllib plus checksums, only when the user asks with ``data.download=true``.

Nothing here runs unless a builder is called with ``download=True``; tests stop at :func:`fetch_url` by
monkeypatching it, so the test suite never touches the network.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path

CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A downloaded or cached file does not have the published checksum."""


def default_root(name: str) -> Path:
    """Where a dataset lives when ``data.root`` is not given: ``$TRAINLAB_DATA/<name>`` or ``~/.cache/trainlab/<name>``."""
    base = os.environ.get("TRAINLAB_DATA") or Path.home() / ".cache" / "trainlab" / "data"
    return Path(base) / name


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_url(url: str, dest: Path) -> None:
    """Copy ``url`` to ``dest`` (the only function that touches the network)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:  # noqa: S310 (https URLs only)
        for block in iter(lambda: response.read(CHUNK), b""):
            out.write(block)


def download(urls: list[str], dest: Path, md5: str) -> Path:
    """Download to ``dest`` from the first mirror that works; the file appears only once its checksum matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            fetch_url(url, tmp)
            got = md5sum(tmp)
            if got != md5:
                raise ChecksumError(f"{url}: md5 {got} does not match the published {md5}")
            tmp.replace(dest)
            return dest
        except (OSError, ChecksumError) as err:
            errors.append(f"{url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    raise OSError(f"could not download {dest.name}:\n  " + "\n  ".join(errors))


def extract_tar(archive: Path, into: Path) -> None:
    """Unpack a tar archive with the ``data`` filter (no absolute paths, links out of ``into`` or devices)."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except tarfile.FilterError as err:
        raise ValueError(f"{archive}: refused, it holds a member that would land outside {into} or is not a plain "
                         f"file ({err})") from None
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ValueError(f"{archive} is truncated or corrupt ({type(err).__name__}: {err}); delete it and download "
                         "it again (data.download=true)") from None
