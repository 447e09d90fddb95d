"""An optional operator that asks an OpenAI-compatible model for an improved version.

Off unless configured: it is used only when ``llm`` is among the operators and a model is
set (``SearchConfig.llm_url``, or ``O_BUS_LLM_BASE_URL`` / ``O_BUS_LLM_API_KEY`` /
``O_BUS_LLM_MODEL`` as for the ``llm`` tool). The prompt holds the parent's source, its
fitness, its evaluation's last failure, and what users said in their feedback on the agent's
answers (the search reads it from the feedback log before it starts). The reply may be a
whole file in a ```python block or a unified diff in a ```diff block; either way the child
goes through the same validation as every other child.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from o_bus.evolution.search.operators.base import NoChild, Parent, Proposal
from o_bus.tools.llm_tool import ChatMessage, ChatRequest, OpenAICompatibleChat
from o_bus.tools.spec import ToolFailure

__all__ = ["LlmPatch", "apply_unified_diff"]

_BLOCK = re.compile(r"```(python|diff|patch)?\s*\n(.*?)```", re.DOTALL)
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")

SYSTEM = (
    "You improve one Python agent file of the O platform. Command handlers are pure "
    "functions (state, command) -> events. Keep the AgentDefinition's name, the state, the "
    "events, the appliers and the fitness function unchanged. Answer with the complete new "
    "file in one ```python block, or a unified diff in one ```diff block."
)


def apply_unified_diff(source: str, diff: str) -> str:
    """Apply a unified diff to ``source``; raise :class:`NoChild` when a hunk does not fit."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    position = 0
    diff_lines = diff.splitlines(keepends=True)
    index = 0
    while index < len(diff_lines):
        match = _HUNK.match(diff_lines[index])
        index += 1
        if not match:
            continue
        start = int(match.group(1)) - 1 if int(match.group(2) or 1) else int(match.group(1))
        if start < position:
            raise NoChild("diff hunks overlap or are out of order")
        out.extend(lines[position:start])
        position = start
        while index < len(diff_lines) and not diff_lines[index].startswith("@@"):
            line = diff_lines[index]
            index += 1
            tag, text = line[:1], line[1:]
            if tag in (" ", "-"):
                if position >= len(lines) or lines[position].rstrip("\n") != text.rstrip("\n"):
                    raise NoChild(f"diff does not apply at line {position + 1}")
                position += 1
                if tag == " ":
                    out.append(text if text.endswith("\n") else text + "\n")
            elif tag == "+":
                out.append(text if text.endswith("\n") else text + "\n")
    out.extend(lines[position:])
    return "".join(out)


class LlmPatch:
    name = "llm"
    arity = 1

    def __init__(self, model: OpenAICompatibleChat, user_feedback: Sequence[str] = ()) -> None:
        self.model = model
        self.user_feedback: tuple[str, ...] = tuple(user_feedback)

    async def propose(self, parents: list[Parent], rng: random.Random) -> Proposal:
        parent = parents[0]
        prompt = (
            f"Current fitness: {parent.fitness if parent.fitness is not None else 'unknown'} "
            "(higher is better).\n"
            + (f"Its evaluation reported: {parent.feedback}\n" if parent.feedback else "")
            + (
                "Users' feedback on its answers (score in [-1, 1], request, text):\n"
                + "".join(f"- {line}\n" for line in self.user_feedback)
                if self.user_feedback
                else ""
            )
            + f"The file:\n```python\n{parent.source}```\n"
        )
        request = ChatRequest(
            messages=[
                ChatMessage(role="system", content=SYSTEM),
                ChatMessage(role="user", content=prompt[:100_000]),
            ],
            temperature=round(rng.uniform(0.2, 1.0), 3),
        )
        try:
            reply = await self.model.complete(request)
        except ToolFailure as err:
            raise NoChild(f"the model gave no answer: {err}") from err
        blocks = _BLOCK.findall(reply.content)
        if not blocks:
            raise NoChild("the model's answer holds no ```python or ```diff block")
        kind, body = blocks[0]
        source = apply_unified_diff(parent.source, body) if kind in ("diff", "patch") else body
        if source == parent.source:
            raise NoChild("the model's answer changes nothing")
        return Proposal(
            source, parent.genome, f"model {self.model.model or '?'} ({kind or 'python'})"
        )
