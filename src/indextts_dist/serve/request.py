"""The body of `POST /v1/audio/speech`, checked field by field, and the one error shape of the API.

Fields are OpenAI's: `model`, `input`, `voice`, `response_format`, `speed` (0.25–4: the second
stage spreads the same codes over 1/speed as many mel frames, pauses included), plus `stream` (send
each segment as soon as it is synthesized). Every refusal is an `ApiError`, answered as one line of
JSON in OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, so an OpenAI client
shows the message as it would OpenAI's own.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["OPENAI_MODEL_NAMES", "ApiError", "ServeLimits", "SpeechRequest", "parse_speech_request"]

OPENAI_MODEL_NAMES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
"""Accepted as `model` too (they mean the one model this server holds), so that clients written
for OpenAI work unchanged."""
SPEED_RANGE = (0.25, 4.0)
FIELDS = frozenset({"model", "input", "voice", "response_format", "speed", "stream"})


@dataclass(frozen=True)
class ServeLimits:
    max_chars: int = 4096
    """Longest `input` (OpenAI's limit is 4096); longer -> 413."""
    request_timeout_s: float = 300.0
    """Per-request deadline, arrival to last segment; past it -> 504 (a stream just ends)."""
    api_key: str | None = None
    """Bearer token for `/v1/*`; None: open."""


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())  # one line, whatever the cause said
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    @property
    def kind(self) -> str:
        if self.status == 401:
            return "authentication_error"
        if self.status in (429, 503):
            return "server_busy"
        return "invalid_request_error" if self.status < 500 else "server_error"

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class SpeechRequest:
    model: str
    input: str
    voice: str
    response_format: str
    speed: float
    stream: bool


def parse_speech_request(
    raw: bytes,
    *,
    models: Collection[str],
    voices: Collection[str],
    formats: Collection[str],
    streamable: Collection[str],
    max_chars: int,
    default_format: str = "wav",
) -> SpeechRequest:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not JSON ({exc})", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "input: a non-empty string is required", param="input")
    if len(text) > max_chars:
        raise ApiError(413, f"input is {len(text)} characters, this server takes at most {max_chars}",
                       param="input", code="input_too_long")  # fmt: skip
    model = _string(body, "model", default=next(iter(models)))
    if model not in models:
        raise ApiError(404, f"model {model!r} is not served here (served: {', '.join(models)})",
                       param="model", code="model_not_found")  # fmt: skip
    voice = _string(body, "voice", default=next(iter(voices)))
    if voice not in voices:
        raise ApiError(400, f"voice {voice!r} is not held by this server (voices: {', '.join(voices)})",
                       param="voice", code="unknown_voice")  # fmt: skip
    fmt = _string(body, "response_format", default=default_format)
    if fmt not in formats:
        raise ApiError(400, f"response_format {fmt!r} is not available (available: {', '.join(formats)})",
                       param="response_format", code="unsupported_format")  # fmt: skip
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        raise ApiError(400, "speed must be a number", param="speed")
    if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        low, high = SPEED_RANGE
        raise ApiError(400, f"speed must be in [{low}, {high}], got {speed}", param="speed")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", param="stream")
    if stream and fmt not in streamable:
        raise ApiError(400, f"response_format {fmt!r} cannot be streamed (use {', '.join(streamable)})",
                       param="response_format", code="unsupported_format")  # fmt: skip
    return SpeechRequest(model, text, voice, fmt, float(speed), stream)


def _string(body: dict[str, Any], key: str, *, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{key} must be a non-empty string", param=key)
    return value
