"""OpenAI message content (text, images, audio, files) → Gemini `Part`s.

Images: `data:` URLs → `inlineData`; any other URL → `fileData` with the mime type guessed from
the URL's file extension (adapters never download). `input_audio` and `file` (`file_data`) parts
→ `inlineData`; `file_id` → 400.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.gemini.json_values import as_dict
from astra_sidecar.sidecar.protocols.openai.wire import Json

_MIME_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "mp4": "video/mp4",
    "mov": "video/mov",
    "webm": "video/webm",
}


def guess_mime(url: str, default: str = "image/jpeg") -> str:
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MIME_BY_EXTENSION.get(ext, default)


def bad_request(where: str, message: str, code: str = "invalid_request") -> ClientError:
    return ClientError(400, f"{where}: {message}", code=code, param=where)


def _data_url_part(url: str, where: str) -> Json:
    header, sep, payload = url[len("data:") :].partition(",")
    if not sep:
        raise bad_request(where, "malformed data URL")
    params = header.split(";")
    mime = params[0] or "text/plain"
    if "base64" not in params[1:]:
        payload = base64.b64encode(unquote_to_bytes(payload)).decode("ascii")
    return {"inlineData": {"mimeType": mime, "data": payload}}


def media_part(url: str, where: str, default_mime: str = "image/jpeg") -> Json:
    if url.startswith("data:"):
        return _data_url_part(url, where)
    return {"fileData": {"mimeType": guess_mime(url, default_mime), "fileUri": url}}


def _file_part(file: Any, where: str) -> Json:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str):
        raise bad_request(where, "only inline `file_data` files can be sent to Gemini", "unsupported_content")
    if data.startswith("data:"):
        return _data_url_part(data, where)
    filename = str(file.get("filename") or "")
    return {"inlineData": {"mimeType": guess_mime(filename, "application/pdf"), "data": data}}


def _content_part(part: Any, where: str) -> Json | None:
    if not isinstance(part, dict):
        raise bad_request(where, "content parts must be objects")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        return {"text": text} if isinstance(text, str) and text else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise bad_request(where, "image_url.url must be a string")
        return media_part(url, where)
    if kind == "input_audio":
        audio = as_dict(part.get("input_audio"))
        return {
            "inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}
        }
    if kind == "file":
        return _file_part(part.get("file"), where)
    if kind == "refusal":
        return None
    raise bad_request(where, f"content part type {kind!r} is not supported by Gemini", "unsupported_content")


def content_parts(content: Any, where: str) -> list[Json]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request(where, "content must be a string or a list of parts")
    parts = (_content_part(p, f"{where}[{i}]") for i, p in enumerate(content))
    return [p for p in parts if p is not None]


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""
