"""Optional tool ``llm``: a chat completion from a language model, off by default.

The model sits behind the :class:`ChatModel` interface. :class:`OpenAICompatibleChat` speaks
the OpenAI-compatible protocol (``POST {base_url}/chat/completions``, ``Authorization: Bearer
<key>``). Without a model given in code, the tool reads its settings from the environment at
each call: ``O_BUS_LLM_BASE_URL`` (required; e.g. ``http://127.0.0.1:8000/v1``),
``O_BUS_LLM_API_KEY`` and ``O_BUS_LLM_MODEL``. Unset, every call fails with ``not_configured``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json, to_json

from o_bus.tools.http_client import http_request
from o_bus.tools.spec import Tool, ToolContext, ToolFailure
from o_bus.wire.headers import CONTENT_TYPE

__all__ = [
    "BASE_URL_ENV",
    "KEY_ENV",
    "MODEL_ENV",
    "ChatMessage",
    "ChatModel",
    "ChatReply",
    "ChatRequest",
    "OpenAICompatibleChat",
    "llm_tool",
]

BASE_URL_ENV = "O_BUS_LLM_BASE_URL"
KEY_ENV = "O_BUS_LLM_API_KEY"
MODEL_ENV = "O_BUS_LLM_MODEL"


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    model: str | None = Field(None, max_length=200)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=100_000)


class ChatReply(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    content: str
    model: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ChatModel(Protocol):
    """Anything that completes a chat: the tool only needs this."""

    async def complete(self, request: ChatRequest) -> ChatReply: ...


class _Choice(BaseModel):
    message: ChatMessage
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Completion(BaseModel):
    """The part of an OpenAI-compatible answer we use; other fields are ignored."""

    model: str = ""
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


@dataclass(frozen=True, slots=True)
class OpenAICompatibleChat:
    """A client of an OpenAI-compatible chat API."""

    base_url: str
    api_key: str = ""
    model: str = ""
    max_response_bytes: int = 1024 * 1024

    @classmethod
    def from_env(cls) -> OpenAICompatibleChat | None:
        base_url = os.environ.get(BASE_URL_ENV, "").strip()
        if not base_url:
            return None
        return cls(base_url, os.environ.get(KEY_ENV, ""), os.environ.get(MODEL_ENV, ""))

    async def complete(self, request: ChatRequest) -> ChatReply:
        model = request.model or self.model
        if not model:
            raise ToolFailure(f"no model named: give one in the call or set {MODEL_ENV}")
        body: dict[str, Any] = {
            "model": model,
            "messages": [m.model_dump() for m in request.messages],
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        headers = {CONTENT_TYPE: "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        response = await http_request(
            "POST",
            url,
            headers=headers,
            body=to_json(body),
            max_response_bytes=self.max_response_bytes,
        )
        if response.status in (401, 403):
            raise ToolFailure(f"the language model refused the API key ({response.status})")
        if response.status == 429 or response.status >= 500:
            raise ToolFailure(f"the language model answered {response.status}", retryable=True)
        if response.status != 200:
            raise ToolFailure(
                f"the language model answered {response.status}: "
                f"{response.body[:300].decode('utf-8', 'replace')}"
            )
        try:
            completion = _Completion.model_validate(from_json(response.body))
        except (ValueError, ValidationError) as err:
            raise ToolFailure(
                f"the language model's answer is not a chat completion: {err}"
            ) from err
        choice = completion.choices[0]
        usage = completion.usage or _Usage()
        return ChatReply(
            content=choice.message.content,
            model=completion.model or model,
            finish_reason=choice.finish_reason,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )


def llm_tool(name: str = "llm", *, model: ChatModel | None = None, **policy: Any) -> Tool:
    """The language-model tool. ``model`` defaults to :meth:`OpenAICompatibleChat.from_env`,
    read at each call, so configuring the environment turns it on without new code."""

    async def run(request: ChatRequest, ctx: ToolContext) -> ChatReply:
        chat = model or OpenAICompatibleChat.from_env()
        if chat is None:
            raise ToolFailure(
                f"the language-model tool is off: set {BASE_URL_ENV} (and {KEY_ENV}, "
                f"{MODEL_ENV}) or give it a model",
                code="not_configured",
            )
        return await chat.complete(request)

    policy.setdefault("timeout", 60.0)
    policy.setdefault("description", "a chat completion from a language model")
    return Tool(name, ChatRequest, ChatReply, run, **policy)
