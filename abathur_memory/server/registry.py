"""Turning service calls into MCP tools: strict arguments, truthful annotations, clean errors.

- Every tool's argument model forbids unknown fields, so a misspelt argument is an error
  (and clients see ``additionalProperties: false``) instead of being silently ignored.
- Our typed errors become tool errors (``isError``) whose text starts with the error kind,
  e.g. ``not_found: no memory user:alice:prefs/theme``; anything unexpected is reported by
  the SDK as a generic failure, never with a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp_types import ToolAnnotations
from pydantic import ConfigDict

from abathur_memory.errors import AbathurError

P = ParamSpec("P")
R = TypeVar("R")

READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)


def writes(*, destructive: bool = False, idempotent: bool = False) -> ToolAnnotations:
    return ToolAnnotations(
        readOnlyHint=False,
        destructiveHint=destructive,
        idempotentHint=idempotent,
        openWorldHint=False,
    )


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Report our errors to the client as tool errors with a specific message."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except AbathurError as exc:
            raise ToolError(f"{exc.code}: {exc}") from None

    return wrapper


def strict_tool(
    fn: Callable[..., Awaitable[Any]],
    *,
    annotations: ToolAnnotations,
    title: str,
) -> Tool:
    """A Tool whose arguments must match its schema exactly (no extra fields)."""
    tool = Tool.from_function(
        tool_errors(fn),
        name=fn.__name__,
        title=title,
        annotations=annotations,
        structured_output=True,
    )
    loose = tool.fn_metadata.arg_model
    strict = type(
        loose.__name__,
        (loose,),
        {"model_config": ConfigDict(extra="forbid", arbitrary_types_allowed=True)},
    )
    tool.fn_metadata.arg_model = strict
    tool.parameters = strict.model_json_schema(by_alias=True)
    return tool
