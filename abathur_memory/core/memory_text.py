"""The words of a memory, as its keyword index holds them (the same on every backend)."""

from __future__ import annotations

from typing import Any


def memory_text(key: str, value: Any) -> str:
    """The memory's key and every key and scalar of its JSON value."""
    words: list[str] = [key.replace("_", " ")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, item in node.items():
                words.append(str(name).replace("_", " "))
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif node is not None:
            words.append(str(node))

    walk(value)
    return " ".join(words)
