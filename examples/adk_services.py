"""A Google ADK agent with its sessions and memory in abathur-memory.

The LLM is scripted so the example runs offline; use ``model="gemini-2.5-flash"`` instead.
The services are opened by an admin principal, as a server serving many users would be;
each ADK user is then acted for with that user's access rules.

    pip install 'abathur-memory[adk]'
    python examples/adk_services.py --db agent.db
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncGenerator

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.genai import types

import abathur_memory
from abathur_memory.adapters.adk import AbathurMemoryService, AbathurSessionService


class ScriptedLlm(BaseLlm):
    """Answers every turn with the same line (stands in for a real model)."""

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text="Noted.")]))


async def main(db: str) -> None:
    async with abathur_memory.open(db=db, user="ops", admin=True) as mem:
        sessions, memories = AbathurSessionService(mem), AbathurMemoryService(mem)
        agent = LlmAgent(name="helper", model=ScriptedLlm(model="scripted"))
        runner = Runner(
            app_name="helpdesk", agent=agent, session_service=sessions, memory_service=memories
        )
        first = await sessions.create_session(app_name="helpdesk", user_id="alice")
        said = types.Content(role="user", parts=[types.Part(text="My printer is a LaserJet 4")])
        async for _ in runner.run_async(user_id="alice", session_id=first.id, new_message=said):
            pass
        done = await sessions.get_session(app_name="helpdesk", user_id="alice", session_id=first.id)
        await memories.add_session_to_memory(done)
        recalled = await memories.search_memory(
            app_name="helpdesk", user_id="alice", query="which printer"
        )
        print("events:", [e.author for e in done.events])
        print("recalled:", [m.content.parts[0].text for m in recalled.memories])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="agent.db")
    asyncio.run(main(parser.parse_args().db))
