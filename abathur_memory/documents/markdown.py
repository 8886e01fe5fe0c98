"""Heading-aware markdown chunking with front matter.

A document is cut at its headings into sections; each section's blocks (paragraphs, lists,
tables, fenced code, ...) are packed into chunks of about ``target_tokens``, consecutive
chunks of a section sharing up to ``overlap_tokens`` of whole blocks. No chunk, with the
heading context it is embedded with, exceeds ``max_tokens`` of the embedding model: an
oversized block is split at line boundaries (a fenced block into pieces that each keep the
fence lines, so no chunk holds half a fence), and an oversized line at word boundaries.
Every chunk knows its heading path and its line range in the original file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from markdown_it import MarkdownIt

from abathur_memory.core.documents import Chunk, ParsedDocument
from abathur_memory.documents.fit import capped_count, longest_fit

TokenCounter = Callable[[str], int]

_FRONT_MATTER_OPEN = "---"
_FRONT_MATTER_CLOSE = ("---", "...")
_MAX_FRONT_MATTER_LINES = 500
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})")
# A word up to this long is cut as it always was; a longer one in time linear in its length.
_SHORT_WORD = 1000


@dataclass(frozen=True)
class ChunkingPolicy:
    max_tokens: int  # hard limit of the embedding model, for embed_text
    target_tokens: int
    overlap_tokens: int

    @classmethod
    def for_model(cls, max_tokens: int, *, target: int = 256, overlap: int = 32) -> ChunkingPolicy:
        target = max(16, min(target, int(max_tokens * 0.8)))
        return cls(
            max_tokens=max_tokens, target_tokens=target, overlap_tokens=min(overlap, target // 4)
        )


@dataclass
class _Block:
    start: int  # 0-based line index in the file, inclusive
    end: int  # exclusive
    kind: str  # heading | fence | other
    tokens: int = 0
    text: str | None = None  # set for pieces of a split block


def parse_markdown(
    text: str, *, file_stem: str, count_tokens: TokenCounter, policy: ChunkingPolicy
) -> ParsedDocument:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    front_matter, error, body_start = _front_matter(lines)
    sections = _sections(lines, body_start)
    chunks: list[Chunk] = []
    for heading_path, blocks in sections:
        chunks.extend(_pack(lines, heading_path, blocks, count_tokens, policy))
    chunks = [
        Chunk(i, c.heading_path, c.start_line, c.end_line, c.text, c.token_count, c.context)
        for i, c in enumerate(chunks)
    ]
    title = _title(front_matter, sections, file_stem)
    return ParsedDocument(
        title=title,
        chunks=chunks,
        front_matter=front_matter,
        front_matter_error=error,
        tags=_tags(front_matter.get("tags")),
        document_type=_scalar(front_matter.get("type")),
    )


# -- front matter ------------------------------------------------------------------------


def _front_matter(lines: list[str]) -> tuple[dict[str, Any], str | None, int]:
    """(data, error, first body line). Broken front matter is reported; the body is kept."""
    if not lines or lines[0].strip() != _FRONT_MATTER_OPEN:
        return {}, None, 0
    for index in range(1, min(len(lines), _MAX_FRONT_MATTER_LINES)):
        if lines[index].strip() in _FRONT_MATTER_CLOSE:
            raw = "\n".join(lines[1:index])
            try:
                data = yaml.safe_load(raw) if raw.strip() else {}
            except yaml.YAMLError as exc:
                problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return {}, f"front matter is not valid YAML: {problem}", index + 1
            if data is None:
                data = {}
            if not isinstance(data, dict):
                return {}, "front matter is not a mapping of keys to values", index + 1
            return _plain(data), None, index + 1
    return {}, None, 0  # no closing line: a thematic break, not front matter


def _plain(data: dict[Any, Any]) -> dict[str, Any]:
    """YAML values made JSON-safe (dates become ISO strings, keys strings)."""

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        if value is None or isinstance(value, bool | int | float | str):
            if isinstance(value, float) and value != value:  # NaN
                return None
            return value
        return str(value.isoformat() if hasattr(value, "isoformat") else value)

    return convert(data)


def _tags(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part for part in re.split(r"[,\s]+", value) if part]
    if not isinstance(value, list):
        return []
    return sorted({str(tag).strip().lower() for tag in value if str(tag).strip()})


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _title(front_matter: dict[str, Any], sections: list[Any], file_stem: str) -> str:
    title = _scalar(front_matter.get("title"))
    if title:
        return title
    for heading_path, _ in sections:
        if heading_path:
            return heading_path[0]
    return file_stem


# -- sections ----------------------------------------------------------------------------

_PARSER = MarkdownIt("commonmark").enable("table")


def _sections(lines: list[str], body_start: int) -> list[tuple[tuple[str, ...], list[_Block]]]:
    """Top-level blocks grouped under their heading path."""
    body = "\n".join(lines[body_start:])
    tokens = _PARSER.parse(body)
    sections: list[tuple[tuple[str, ...], list[_Block]]] = [((), [])]
    stack: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.level != 0 or token.map is None or token.nesting == -1:
            i += 1
            continue
        start, end = token.map[0] + body_start, token.map[1] + body_start
        if token.type == "heading_open":
            level = int(token.tag[1])
            inline = tokens[i + 1] if i + 1 < len(tokens) else None
            text = _heading_text(inline.content if inline is not None else "")
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, text or "(untitled)"))
            sections.append((tuple(t for _, t in stack), [_Block(start, end, "heading")]))
        else:
            kind = "fence" if token.type in ("fence", "code_block") else "other"
            sections[-1][1].append(_Block(start, end, kind))
        i += 1
    sections = [(path, blocks) for path, blocks in sections if blocks]
    # A heading with nothing under it before a subheading lives on in the child's heading
    # path; on its own it would be a chunk holding one line.
    return [
        (path, blocks)
        for i, (path, blocks) in enumerate(sections)
        if not (
            all(b.kind == "heading" for b in blocks)
            and i + 1 < len(sections)
            and sections[i + 1][0][: len(path)] == path
            and len(sections[i + 1][0]) > len(path)
        )
    ]


def _heading_text(raw: str) -> str:
    text = re.sub(r"<[^>]+>", "", raw)  # inline HTML such as <a id="..."></a>
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: keep the label
    text = re.sub(r"[`*_]", "", text)
    return " ".join(text.split())


# -- packing -----------------------------------------------------------------------------


def _pack(
    lines: list[str],
    heading_path: tuple[str, ...],
    blocks: list[_Block],
    count: TokenCounter,
    policy: ChunkingPolicy,
) -> list[Chunk]:
    context = _context(heading_path, count, policy.max_tokens)
    context_tokens = count(f"{context}\n\n") if context else 0
    # Room for the chunk text under the model's hard limit; _finish() checks the result.
    limit = max(8, policy.max_tokens - context_tokens - 2)
    target = min(policy.target_tokens, limit)

    pieces: list[_Block] = []
    for block in blocks:
        block.tokens = capped_count(_block_text(lines, block), count, limit)
        if block.tokens <= limit:
            pieces.append(block)
        else:
            pieces.extend(_split_block(lines, block, count, limit))

    groups: list[list[_Block]] = []
    current: list[_Block] = []
    current_tokens = 0
    for piece in pieces:
        headings_only = all(b.kind == "heading" for b in current)
        full = current_tokens + piece.tokens > (limit if headings_only else target)
        if current and full:
            groups.append(current)
            current = [] if headings_only else _overlap(current, policy, piece.tokens, target)
            current_tokens = sum(b.tokens for b in current)
        current.append(piece)
        current_tokens += piece.tokens
    if current:
        groups.append(current)
    finished: list[tuple[Chunk, bool]] = []
    for group in groups:
        finished.extend(_finish(lines, heading_path, context, group, count, policy))
    return _fold_lone_headings(finished)


def _fold_lone_headings(finished: list[tuple[Chunk, bool]]) -> list[Chunk]:
    """A chunk holding only a heading (its body did not fit beside it) is folded into the
    next chunk: that chunk's line range starts at the heading, whose words it already
    carries in its heading path. Alone, the short heading would outrank its own body."""
    chunks: list[Chunk] = []
    pending_start: int | None = None
    for index, (chunk, heading_only) in enumerate(finished):
        if heading_only and index + 1 < len(finished):
            pending_start = chunk.start_line if pending_start is None else pending_start
            continue
        if pending_start is not None:
            chunk = Chunk(
                chunk.seq,
                chunk.heading_path,
                pending_start,
                chunk.end_line,
                chunk.text,
                chunk.token_count,
                chunk.context,
            )
            pending_start = None
        chunks.append(chunk)
    return chunks


def _context(heading_path: tuple[str, ...], count: TokenCounter, max_tokens: int) -> str:
    """The heading path as embedded: outer headings dropped if it would crowd the chunk."""
    path = list(heading_path)
    while len(path) > 1 and count(" > ".join(path)) > max_tokens // 4:
        path.pop(0)
    context = " > ".join(path)
    if path and count(context) > max_tokens // 4:
        context = context[
            : _longest_prefix(context, lambda n: count(context[:n]) <= max_tokens // 4)
        ]
    return context


def _finish(
    lines: list[str],
    heading_path: tuple[str, ...],
    context: str,
    group: list[_Block],
    count: TokenCounter,
    policy: ChunkingPolicy,
) -> list[tuple[Chunk, bool]]:
    """One chunk for the group, or several if joining the blocks went over the limit; each
    with whether it holds nothing but headings."""
    text = "\n\n".join(_block_text(lines, b) for b in group)
    chunk = Chunk(0, heading_path, group[0].start + 1, max(b.end for b in group), text, 0, context)
    tokens = count(chunk.embed_text)
    if tokens <= policy.max_tokens or len(group) == 1:
        finished = Chunk(0, heading_path, chunk.start_line, chunk.end_line, text, tokens, context)
        return [(finished, all(b.kind == "heading" for b in group))]
    middle = len(group) // 2
    return [
        *_finish(lines, heading_path, context, group[:middle], count, policy),
        *_finish(lines, heading_path, context, group[middle:], count, policy),
    ]


def _overlap(
    previous: list[_Block], policy: ChunkingPolicy, next_tokens: int, target: int
) -> list[_Block]:
    """Trailing whole blocks of the previous chunk to repeat, within the overlap budget."""
    overlap = policy.overlap_tokens
    if overlap <= 0 or len(previous) < 2:
        return []
    carried: list[_Block] = []
    total = 0
    for block in reversed(previous[1:]):
        if block.kind == "heading" or total + block.tokens > overlap:
            break
        if total + block.tokens + next_tokens > target:
            break
        carried.insert(0, block)
        total += block.tokens
    return carried


def _text(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start:end]).strip("\n")


def _block_text(lines: list[str], block: _Block) -> str:
    return block.text if block.text is not None else _text(lines, block.start, block.end)


def _split_block(lines: list[str], block: _Block, count: TokenCounter, limit: int) -> list[_Block]:
    """Split an oversized block at line boundaries; fences keep their delimiter lines."""
    if block.kind == "fence":
        return _split_fence(lines, block, count, limit)
    return _split_lines(lines, block.start, block.end, block.kind, count, limit)


def _split_lines(
    lines: list[str],
    start: int,
    stop: int,
    kind: str,
    count: TokenCounter,
    limit: int,
    wrap: Callable[[str], str] = lambda text: text,
) -> list[_Block]:
    """Greedy runs of whole lines whose (wrapped) text fits the limit."""
    parts: list[_Block] = []
    guess = 2
    while start < stop:

        def measure(n: int, at: int = start) -> int:
            return count(wrap(_text(lines, at, at + n)))

        taken, tokens = longest_fit(stop - start, measure, limit, guess)
        end = start + taken
        text = wrap(_text(lines, start, end))
        if tokens is None:
            tokens = capped_count(text, count, limit)
        if tokens > limit:  # one line alone is too long
            parts.extend(_split_line(lines[start], start, kind, count, limit, wrap))
        else:
            parts.append(_Block(start, end, kind, tokens, text))
            guess = taken
        start = end
    return parts


def _split_fence(lines: list[str], block: _Block, count: TokenCounter, limit: int) -> list[_Block]:
    opening = lines[block.start]
    match = _FENCE.match(opening)
    marker = match.group(2) if match else "```"
    last = block.end - 1
    has_closing = last > block.start and lines[last].strip().startswith(marker[0] * 3)
    body_end = last if has_closing else block.end
    if body_end <= block.start + 1:
        return _split_lines(lines, block.start, block.end, "fence", count, limit)
    return _split_lines(
        lines,
        block.start + 1,
        body_end,
        "fence",
        count,
        limit,
        wrap=lambda body: f"{opening}\n{body}\n{marker}",
    )


def _split_line(
    line: str, index: int, kind: str, count: TokenCounter, limit: int, wrap: Callable[[str], str]
) -> list[_Block]:
    """A single line longer than the limit: cut it at spaces, or inside a giant word."""
    pieces: list[_Block] = []

    def add(text: str, tokens: int | None) -> None:
        wrapped = wrap(text)
        pieces.append(
            _Block(index, index + 1, kind, count(wrapped) if tokens is None else tokens, wrapped)
        )

    words = line.split(" ")
    first = 0
    guess = 2
    while first < len(words):
        word = words[first]
        start = 0  # cut characters off a word longer than the limit, without copying the rest
        while start < len(word):
            rest = len(word) - start

            def prefix(n: int, at: int = start, word: str = word) -> int:
                return count(wrap(word[at : at + n]))

            def prefix_fits(n: int, prefix: Callable[[int], int] = prefix) -> bool:
                return prefix(n) <= limit

            tokens: int | None = None
            if rest <= _SHORT_WORD:  # as always: does the rest fit, else the longest prefix
                if prefix_fits(rest):
                    break
                cut = _longest_prefix(word[start:], prefix_fits)
            else:  # a long word: counting all that is left at every cut would be quadratic
                if start == 0 and prefix(rest) <= limit:
                    break
                cut, tokens = longest_fit(rest, prefix, limit)
                if cut == rest:  # what is left fits
                    break
            add(word[start : start + cut], tokens)
            start += cut
        words[first] = word[start:]  # what is left may share a piece with the next words

        def measure(n: int, at: int = first) -> int:
            return count(wrap(" ".join(words[at : at + n])))

        taken, tokens = longest_fit(len(words) - first, measure, limit, guess)
        add(" ".join(words[first : first + taken]), tokens)
        first += taken
        guess = taken
    return pieces


def _longest_prefix(text: str, fits: Callable[[int], bool]) -> int:
    """The longest prefix length (at least 1) that fits, by bisection over the whole text:
    for a heading path, short, where the cut must not move between releases."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low
