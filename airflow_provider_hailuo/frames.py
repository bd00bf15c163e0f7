"""
First and last frames from where a data platform keeps them: object stores, local files, data: URLs.

The services fetch a frame by URL (or take it inline as a ``data:`` URL where the vendor allows),
so a frame in a private bucket is handed over as a pre-signed link that expires within the hour,
and a local file travels inline. Every rule is checked here, before the submit spends money: the
object exists, is small enough, is a JPEG, PNG or WebP by its bytes (Pillow reads only the header;
nothing here parses image formats by hand), and meets the vendor's size rules when it has any.
An http(s) URL is passed through unread: the service fetches it, and reading it here would only
add a second download that proves nothing about what the service will see.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_hailuo.api import HailuoValidationError
from airflow_provider_hailuo.storage import LOCAL_PROTOCOLS, plain_uri, protocol_of

#: Every vendor refuses input images of 20 MB or more.
MAX_FRAME_BYTES = 20 * 1024 * 1024
#: A signed frame link must expire within the hour: it is a bearer credential for the object.
MAX_SIGN_EXPIRY_S = 3600
#: Pillow's names of the formats the services take, and their MIME subtypes.
FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}
#: Range-read size for the header: Pillow asks for a few hundred bytes, a JPEG's EXIF may need more.
#: (Pillow's WebP reader takes the whole file; the 20 MB check before it bounds that.)
HEADER_BLOCK_BYTES = 64 * 1024
_DATA_URL_RE = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<payload>.*)$", re.DOTALL)
_MIME_ALIASES = {"jpg": "jpeg", "pjpeg": "jpeg"}
_FORMS = "an http(s) URL, a data:image/...;base64 URL, or an s3://, gs:// or file:// path"

Kind = Literal["http", "data", "object", "file"]


@dataclass(frozen=True)
class ResolvedFrame:
    """
    A frame ready to send (``url``) and what is known about it, for the manifest and lineage.

    ``url`` may be a signed link or a whole image inline, so it is left out of :meth:`as_dict`;
    ``source`` names the frame without signature or payload.
    """

    field: str
    url: str = dataclasses.field(repr=False)
    source: str
    kind: Kind
    format: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None

    @property
    def dataset(self) -> tuple[str, str] | None:
        """OpenLineage ``(namespace, name)`` of the input: ``("s3://bucket", "key")``, ``("file", path)``."""
        if self.kind == "data":
            return None
        parts = urlsplit(self.source)
        if self.kind == "file":
            return "file", parts.path
        if self.kind == "object":
            return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
        return f"{parts.scheme}://{parts.netloc}", parts.path

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "source": self.source,
            "kind": self.kind,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class _Rules:
    field: str
    vendor: str
    min_short_side: int | None
    aspect_range: tuple[float, float] | None

    def fail(self, rule: str, value: Any = None) -> HailuoValidationError:
        return HailuoValidationError(self.field, f"{rule} (vendor: {self.vendor})", value)

    def check_bytes(self, size: int | None, where: str) -> None:
        if size is not None and size >= MAX_FRAME_BYTES:
            raise self.fail(
                f"must be under {MAX_FRAME_BYTES // 2**20} MB, but {where} is {size / 2**20:.1f} MB"
            )

    def identify(self, handle: IO[bytes], where: str) -> tuple[str, int, int]:
        """Format and size from the image header; then the vendor's size rules."""
        # Imported here: only a request with a frame needs Pillow, and every task process that
        # parses a DAG using the operators would pay for the import otherwise.
        from PIL import Image, UnidentifiedImageError

        unreadable = (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            Image.DecompressionBombError,
        )
        try:
            with Image.open(handle) as image:
                kind, (width, height) = image.format, image.size
        except unreadable as err:
            raise self.fail(
                f"must be a JPEG, PNG or WebP image, but {where} is not a readable image ({err})"
            ) from None
        if kind not in FORMATS:
            raise self.fail(f"must be a JPEG, PNG or WebP image, but {where} is {kind}")
        if self.min_short_side is not None and min(width, height) <= self.min_short_side:
            raise self.fail(
                f"must have a short side over {self.min_short_side} px, but {where} is {width}x{height}"
            )
        if self.aspect_range is not None:
            low, high = self.aspect_range
            if not low - 1e-9 <= width / height <= high + 1e-9:
                raise self.fail(
                    f"must have an aspect ratio (width:height) between {_ratio(low)} and {_ratio(high)}, "
                    f"but {where} is {width}x{height}"
                )
        return FORMATS[kind], width, height


def _ratio(value: float) -> str:
    fraction = Fraction(value).limit_denominator(100)
    return f"{fraction.numerator}:{fraction.denominator}"


def resolve_frame(
    field: str,
    value: str | ObjectStoragePath,
    *,
    conn_id: str | None = None,
    accepts_data_url: bool,
    vendor: str,
    min_short_side: int | None = None,
    aspect_range: tuple[float, float] | None = None,
    sign_expiry_s: int = MAX_SIGN_EXPIRY_S,
) -> ResolvedFrame:
    """
    Turn a frame reference into the URL the vendor will fetch, checking it first.

    ``value`` is an http(s) URL (sent unchanged), a ``data:image/...;base64,`` URL, an object-store
    path (``s3://``, ``gs://``... or an ``ObjectStoragePath``; ``conn_id`` names the connection for
    a path that carries none), or a ``file://`` path (sent inline as a ``data:`` URL, which needs
    ``accepts_data_url``). ``min_short_side`` is exclusive (MiniMax: over 300 px);
    ``aspect_range`` is width/height, inclusive. Rule breaks raise ``HailuoValidationError``
    naming ``field``, the rule and ``vendor``; a store that cannot be reached raises its own error,
    which an Airflow retry may outlive.
    """
    rules = _Rules(field, vendor, min_short_side, aspect_range)
    if isinstance(sign_expiry_s, bool) or not isinstance(sign_expiry_s, int):
        raise rules.fail("needs sign_expiry_s as whole seconds", sign_expiry_s)
    if not 1 <= sign_expiry_s <= MAX_SIGN_EXPIRY_S:
        raise rules.fail(f"needs sign_expiry_s from 1 to {MAX_SIGN_EXPIRY_S} seconds", sign_expiry_s)
    if isinstance(value, ObjectStoragePath):
        if protocol_of(value) in LOCAL_PROTOCOLS:
            return _from_local_file(Path(value.path), rules, accepts_data_url)
        if conn_id and not _conn_id_of(value):
            value = ObjectStoragePath(plain_uri(value), conn_id=conn_id)
        return _from_object_store(value, rules, sign_expiry_s)
    if not isinstance(value, str) or not value.strip():
        raise rules.fail(f"must be {_FORMS}", value)
    value = value.strip()
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise rules.fail("must be an absolute http(s) URL with a host", value)
        return ResolvedFrame(field=field, url=value, source=_without_query(value), kind="http")
    if scheme == "data":
        return _from_data_url(value, rules, accepts_data_url)
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise rules.fail("must be a file:///absolute/path URL", value)
        return _from_local_file(Path(url2pathname(parts.path)), rules, accepts_data_url)
    if not scheme or "://" not in value:
        raise rules.fail(f"must be {_FORMS}", value)
    try:
        path = ObjectStoragePath(value, conn_id=conn_id or None)
        path.fs  # noqa: B018 - Airflow 2 finds the filesystem lazily: an unknown store fails here
    except (ValueError, ImportError) as err:
        raise rules.fail(f"names a store this worker cannot open ({err})", value) from err
    return _from_object_store(path, rules, sign_expiry_s)


def _conn_id_of(path: ObjectStoragePath) -> str | None:
    """The path's connection: an attribute on Airflow 3, a storage option on Airflow 2."""
    conn_id = getattr(path, "conn_id", None)
    return conn_id if conn_id is not None else path.storage_options.get("conn_id")


def _without_query(url: str) -> str:
    """The URL without query or fragment: a pre-signed http link keeps its signature there."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _from_data_url(value: str, rules: _Rules, accepts_data_url: bool) -> ResolvedFrame:
    if not accepts_data_url:
        raise rules.fail("cannot be a data: URL here; use an http(s) URL or an object-store path")
    match = _DATA_URL_RE.match(value)
    if not match or ";base64" not in match["params"].lower():
        raise rules.fail("must be a data:image/<format>;base64,<data> URL")
    mime = match["mime"].lower()
    major, _, minor = mime.partition("/")
    if major != "image":
        raise rules.fail(f"must be a data:image/... URL, not data:{mime}")
    try:
        data = base64.b64decode(match["payload"], validate=True)
    except binascii.Error as err:
        raise rules.fail(f"must carry valid base64 after ';base64,' ({err})") from None
    rules.check_bytes(len(data), "the data: URL's image")
    image_format, width, height = rules.identify(io.BytesIO(data), "the data: URL's image")
    if _MIME_ALIASES.get(minor, minor) != image_format:
        raise rules.fail(f"declares data:{mime} but its bytes are {image_format.upper()}")
    return ResolvedFrame(
        field=rules.field,
        url=value,
        source=f"data:{mime}",
        kind="data",
        format=image_format,
        width=width,
        height=height,
        bytes=len(data),
    )


def _from_local_file(path: Path, rules: _Rules, accepts_data_url: bool) -> ResolvedFrame:
    uri = path.absolute().as_uri()
    if not accepts_data_url:
        raise rules.fail(
            f"cannot be a local file ({uri}): {rules.vendor} takes this frame only by URL, so put it in "
            "an object store (s3://, gs://) or serve it over http(s)"
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise rules.fail(f"must name an existing file, but {uri} does not exist") from None
    if not path.is_file():
        raise rules.fail(f"must name a file, but {uri} is not one")
    rules.check_bytes(size, uri)
    try:
        data = path.read_bytes()
    except PermissionError as err:
        raise rules.fail(f"must be readable, but {uri} is not ({err})") from None
    image_format, width, height = rules.identify(io.BytesIO(data), uri)
    return ResolvedFrame(
        field=rules.field,
        url=f"data:image/{image_format};base64,{base64.b64encode(data).decode('ascii')}",
        source=uri,
        kind="file",
        format=image_format,
        width=width,
        height=height,
        bytes=len(data),
    )


def _from_object_store(path: ObjectStoragePath, rules: _Rules, sign_expiry_s: int) -> ResolvedFrame:
    uri = plain_uri(path)
    fs = path.fs
    try:
        info = fs.info(path.path)
    except FileNotFoundError:
        raise rules.fail(f"must name an existing object, but {uri} does not exist") from None
    except PermissionError as err:
        raise rules.fail(
            f"must be readable with connection {_conn_id_of(path)!r}, but {uri} is not ({err})"
        ) from None
    if info.get("type") == "directory":
        raise rules.fail(f"must name an object, but {uri} is a folder")
    size = info.get("size")
    rules.check_bytes(size, uri)
    with fs.open(path.path, "rb", block_size=HEADER_BLOCK_BYTES) as handle:
        image_format, width, height = rules.identify(handle, uri)
    try:
        url = fs.sign(path.path, expiration=sign_expiry_s)
    except NotImplementedError:
        raise rules.fail(
            f"must be in a store that can sign URLs, but {protocol_of(path)}:// cannot; "
            "use s3://, gs:// or an http(s) URL"
        ) from None
    return ResolvedFrame(
        field=rules.field,
        url=url,
        source=uri,
        kind="object",
        format=image_format,
        width=width,
        height=height,
        bytes=size,
    )
