"""Turning service calls into MCP tools: strict arguments, truthful annotations, one error
contract.

- Every tool's argument model forbids unknown fields, so a misspelt argument is an error
  (and clients see ``additionalProperties: false``) instead of being silently ignored.
- Every error's text starts with its kind: ``invalid_input`` (argument errors included, as
  ``invalid_input: <field>: <reason>``), ``not_found``, ``conflict``, ``forbidden``,
  ``unavailable``, ``read_only``; a crash is ``internal_error`` with the details in the
  server's log, never in the reply.
- A ``forbidden`` answer that a service did not audit itself is audited here, so every
  denial of every tool leaves an audit row.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic_core
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError

from abathur_memory.core.records import Denial
from abathur_memory.errors import AbathurError, Forbidden
from abathur_memory.server.schemas import lean_input, lean_output

log = logging.getLogger(__name__)

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def writes(*, destructive: bool = False, idempotent: bool = False) -> ToolAnnotations:
    """A writing tool's hints; a non-idempotent one leaves ``idempotentHint`` out, MCP's
    default being false (tools/list is paid for on every turn)."""
    return ToolAnnotations(
        read_only_hint=False,
        destructive_hint=destructive,
        idempotent_hint=idempotent or None,
        open_world_hint=False,
    )


def describe_validation(exc: ValidationError) -> str:
    """``invalid_input: <field>: <reason>`` per problem, without echoing the input."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{field}: {error['msg']}")
    return "invalid_input: " + "; ".join(problems)


class AbathurTool(Tool):
    """A Tool whose failures follow the error contract above, and whose result's text copy
    is compact JSON."""

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        started = time.perf_counter()
        outcome, rows = "ok", None
        try:
            result = await super().run(arguments, context, convert_result=False)
            rows = rows_of(result)
            return self._converted(result) if convert_result else result
        except ToolError as exc:
            outcome = _outcome(exc)
            raise ToolError(self._message(exc, context)) from exc.__cause__
        finally:
            _measure(context, self.name, outcome, (time.perf_counter() - started) * 1000, rows)

    def _converted(self, result: Any) -> Any:
        """The structured result, and the same JSON as its text copy.

        MCP asks a tool that returns structured content to send it serialised in a text block
        too, for clients that read only text. The SDK indents that copy (a quarter larger);
        an agent reads it on every call, so it is sent compact.
        """
        if not isinstance(result, BaseModel):
            return self.fn_metadata.convert_result(result)
        try:
            structured = result.model_dump(mode="json", by_alias=True)
            text = pydantic_core.to_json(structured).decode()
        except Exception as exc:  # as the SDK's own conversion: a crash, not the caller's fault
            raise UnexpectedToolError(f"Error executing tool {self.name}") from exc
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=structured
        )

    def _message(self, exc: ToolError, context: Any) -> str:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            return describe_validation(cause)
        if isinstance(cause, AbathurError):
            if isinstance(cause, Forbidden) and not getattr(cause, "audited", False):
                _audit_denial(context, self.name, cause)
            return f"{cause.code}: {cause}"
        if isinstance(exc, UnexpectedToolError):
            log.error("tool %s failed unexpectedly", self.name, exc_info=cause)
            return (
                f"internal_error: {self.name} failed unexpectedly; the server's log has the details"
            )
        return f"invalid_input: {exc}"  # the SDK's own refusals (unknown tool and the like)


def _outcome(exc: ToolError) -> str:
    """The error kind a failed call is counted under (as its message starts)."""
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        return "invalid_input"
    if isinstance(cause, AbathurError):
        return cause.code
    if isinstance(exc, UnexpectedToolError):
        return "internal_error"
    return "invalid_input"


def rows_of(result: Any) -> int | None:
    """Rows a result carries: the length of its first list (hits, items, events), else one
    for a record, None when it says nothing."""
    if result is None:
        return None
    if isinstance(result, list):
        return len(result)
    if isinstance(result, BaseModel):
        for name in type(result).model_fields:
            value = getattr(result, name, None)
            if isinstance(value, list):
                return len(value)
        return 1
    return None


def _measure(context: Any, tool: str, outcome: str, latency_ms: float, rows: int | None) -> None:
    """Queue the call's metric (never raises: a measurement must not fail a call)."""
    from abathur_memory.server.context import principal_for, runtime_of

    try:
        runtime = runtime_of(context)
        actor = principal_for(context).actor
    except Exception:  # pragma: no cover - no lifespan (a bare tool in a test)
        return
    runtime.call_metrics.record(tool, actor, outcome, latency_ms, rows)


def _audit_denial(context: Any, tool: str, exc: Forbidden) -> None:
    from abathur_memory.server.context import principal_for, runtime_of

    try:
        runtime = runtime_of(context)
        principal = principal_for(context)
    except AbathurError:  # pragma: no cover - no lifespan: nothing to audit into
        return
    action = tool.split("_", 1)[0] + "_denied"
    runtime.recorder.record(Denial(principal.actor, action, tool, tool, str(exc)))


def _one_paragraph_per_line(doc: str) -> str:
    """The docstring without its source indentation and line wrapping."""
    return re.sub(r"(?<!\n)\n(?!\n)", " ", inspect.cleandoc(doc))


def strict_tool(
    fn: Callable[..., Awaitable[Any]],
    *,
    annotations: ToolAnnotations,
    title: str,
) -> Tool:
    """A Tool whose arguments must match its schema exactly (no extra fields), with its
    docstring as a clean description (no source indentation)."""
    tool = AbathurTool.from_function(
        fn,
        name=fn.__name__,
        title=title,
        description=_one_paragraph_per_line(fn.__doc__ or ""),
        annotations=annotations,
        structured_output=True,
    )
    loose = tool.fn_metadata.arg_model
    strict: type[ArgModelBase] = type(
        loose.__name__,
        (loose,),
        {"model_config": ConfigDict(extra="forbid", arbitrary_types_allowed=True)},
    )
    tool.fn_metadata.arg_model = strict
    tool.parameters = lean_input(strict.model_json_schema(by_alias=True))
    tool.fn_metadata.output_schema = lean_output(tool.fn_metadata.output_model)
    return tool
