"""Picking the next speaker with a model, as autogen's `SelectorGroupChat` does.

The prompt, the history format, the mention matching and the retries with feedback follow
autogen-agentchat 0.7's `SelectorGroupChatManager`, so the same model (or the same scripted
client) picks the same speakers in branchpoint as in autogen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    ModelFamily,
    SystemMessage,
    UserMessage,
)

from branchpoint.model import SelectorSpec


def mentioned_agents(content: str, names: Sequence[str]) -> dict[str, int]:
    """How often each name is mentioned (`Story_writer` also as `Story writer` or `Story\\_writer`)."""
    mentions: dict[str, int] = {}
    for name in names:
        forms = (name, name.replace("_", " "), name.replace("_", r"\_"))
        regex = r"(?<=\W)(" + "|".join(re.escape(f) for f in forms) + r")(?=\W)"
        count = len(re.findall(regex, f" {content} "))
        if count > 0:
            mentions[name] = count
    return mentions


def selector_prompt(
    selector: SelectorSpec, task: str, history: Sequence[tuple[str, str]], candidates: list[str]
) -> str:
    """The selector's prompt: the roles, the candidates, and the conversation so far."""
    roles = "\n".join(
        re.sub(r"\s+", " ", f"{name}: {description}").strip()
        for name, description in zip(selector.participants, selector.descriptions, strict=True)
    )
    lines = [("user", task), *history]
    text = "\n".join(f"{source}: {content}".rstrip() + "\n\n" for source, content in lines)
    return selector.prompt.format(roles=roles, participants=str(candidates), history=text)


def candidates(selector: SelectorSpec, previous: str | None) -> list[str]:
    """Who may speak next: everyone, or everyone but the previous speaker."""
    names = list(selector.participants)
    if previous is not None and not selector.allow_repeated_speaker:
        names = [n for n in names if n != previous]
    return names


async def select_next_speaker(
    selector: SelectorSpec,
    task: str,
    history: Sequence[tuple[str, str]],
    client: ChatCompletionClient,
) -> str:
    """The next speaker after `history` ((agent, message) pairs, oldest first)."""
    previous = history[-1][0] if history else None
    names = candidates(selector, previous)
    if len(names) == 1:
        return names[0]
    prompt = selector_prompt(selector, task, history, names)
    messages: list[SystemMessage | UserMessage | AssistantMessage] = (
        [SystemMessage(content=prompt)]
        if ModelFamily.is_openai(client.model_info["family"])
        else [UserMessage(content=prompt, source="user")]
    )
    for _ in range(selector.max_attempts):
        response = await client.create(messages)
        reply = str(response.content)
        messages.append(AssistantMessage(content=reply, source="selector"))
        mentions = mentioned_agents(reply, selector.participants)
        if len(mentions) == 1:
            chosen = next(iter(mentions))
            if selector.allow_repeated_speaker or chosen != previous:
                return chosen
            feedback = (
                f"Repeated speaker is not allowed, please select a different name from: {names}."
            )
        elif not mentions:
            feedback = f"No valid name was mentioned. Please select from: {names}."
        else:
            feedback = (
                f"Expected exactly one name to be mentioned. Please select only one from: {names}."
            )
        messages.append(UserMessage(content=feedback, source="user"))
    return previous if previous is not None else names[0]
