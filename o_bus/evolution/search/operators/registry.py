"""The operators a search uses, from its configuration."""

from __future__ import annotations

import os

from o_bus.errors import ConfigurationError
from o_bus.evolution.search.config import SearchConfig
from o_bus.evolution.search.genome import GenomeSpace
from o_bus.evolution.search.operators.ast_ops import AstMutation
from o_bus.evolution.search.operators.base import Operator
from o_bus.evolution.search.operators.crossover import Crossover
from o_bus.evolution.search.operators.genome_ops import GenomeMutation, RandomGenome
from o_bus.evolution.search.operators.llm import LlmPatch
from o_bus.tools.llm_tool import KEY_ENV, OpenAICompatibleChat

__all__ = ["build_operators"]


def build_operators(config: SearchConfig, space: GenomeSpace | None) -> list[Operator]:
    """``config.operators`` as operator objects; ``genome`` needs a declared genome and
    ``llm`` a configured model, and each is skipped (with the others kept) without it."""
    found: list[Operator] = []
    for name in dict.fromkeys(config.operators):
        if name == "genome" and space is not None:
            found.append(GenomeMutation(space))
        elif name == "random" and space is not None:
            found.append(RandomGenome(space))
        elif name == "ast":
            found.append(AstMutation())
        elif name == "crossover":
            found.append(Crossover(space))
        elif name == "llm":
            model = (
                OpenAICompatibleChat(config.llm_url, os.environ.get(KEY_ENV, ""), config.llm_model)
                if config.llm_url
                else OpenAICompatibleChat.from_env()
            )
            if model is not None:
                found.append(LlmPatch(model))
    if not found:
        raise ConfigurationError(
            f"none of the operators {', '.join(config.operators)} can run for {config.agent!r} "
            "(genome needs AgentDefinition(genome=...), llm a configured model)"
        )
    return found
