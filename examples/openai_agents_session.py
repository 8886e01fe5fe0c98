"""An OpenAI Agents SDK agent whose conversation lives in abathur-memory.

The model is scripted so the example runs offline; put a real one (``model="gpt-4.1"``)
in its place. Run twice with the same --db: the second run remembers the first.

    pip install 'abathur-memory[openai-agents]'
    python examples/openai_agents_session.py --db agent.db
"""

from __future__ import annotations

import argparse
import asyncio

from agents import Agent, Runner, set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message

import abathur_memory
from abathur_memory.adapters.openai_agents import AbathurSession


async def main(db: str) -> None:
    set_tracing_disabled(True)
    model = ScriptedModel(
        [
            [assistant_message("Noted: you take your coffee black.")],
            [assistant_message("Black, no sugar.")],
        ]
    )
    agent = Agent(name="barista", model=model)
    async with abathur_memory.open(db=db, user="alice") as mem:
        session = AbathurSession("coffee-chat", mem)
        await Runner.run(agent, "I take my coffee black.", session=session)
        answer = await Runner.run(agent, "How do I take my coffee?", session=session)
        seen = [item.get("content") for item in model.calls[-1].input if isinstance(item, dict)]
        print("the model saw:", seen)
        print("answer:", answer.final_output)
        stored = await mem.sessions.get(session.abathur_session_id, events_after=0)
        print("events in abathur-memory:", [e.event_type for e in stored.events])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="agent.db")
    asyncio.run(main(parser.parse_args().db))
