"""Heading-aware chunking, front matter, token limits, fences."""

from __future__ import annotations

import math

from abathur_memory.core.documents import ParsedDocument
from abathur_memory.documents.markdown import ChunkingPolicy, parse_markdown


def count(text: str) -> int:
    return math.ceil(len(text.split()) * 1.3) + 2


POLICY = ChunkingPolicy.for_model(128, target=100, overlap=20)


def parse(text: str, policy: ChunkingPolicy = POLICY) -> ParsedDocument:
    return parse_markdown(text, file_stem="doc", count_tokens=count, policy=policy)


def test_front_matter_becomes_metadata():
    doc = parse(
        "---\ntitle: Hello\ntags: [A, b]\ntype: design\ndate: 2024-01-02\n---\n# Body\ntext\n"
    )
    assert doc.title == "Hello"
    assert doc.tags == ["a", "b"]
    assert doc.document_type == "design"
    assert doc.front_matter["date"] == "2024-01-02"
    assert doc.front_matter_error is None
    assert doc.chunks[0].start_line == 7  # the body, not the front matter


def test_broken_front_matter_is_reported_and_the_body_indexed():
    doc = parse("---\ntitle: [unclosed\n---\n# Heading\nThe body stays searchable.\n")
    assert doc.front_matter_error is not None
    assert doc.front_matter_error.startswith("front matter is not valid YAML")
    assert doc.title == "Heading"
    assert "body stays searchable" in doc.chunks[0].text


def test_a_leading_rule_without_closing_is_not_front_matter():
    doc = parse("---\n\nJust text after a thematic break.\n")
    assert doc.front_matter == {} and doc.front_matter_error is None
    assert "Just text" in doc.chunks[0].text


def test_tags_as_a_comma_string():
    assert parse("---\ntags: one, Two  three\n---\nx\n").tags == ["one", "three", "two"]


def test_heading_paths_and_line_ranges():
    text = "# Guide\nintro\n\n## Install\nstep one\n\n### Linux\napt\n\n## Use\nrun it\n"
    doc = parse(text)
    paths = [(c.heading_path, c.start_line, c.end_line) for c in doc.chunks]
    assert paths == [
        (("Guide",), 1, 2),
        (("Guide", "Install"), 4, 5),
        (("Guide", "Install", "Linux"), 7, 8),
        (("Guide", "Use"), 10, 11),
    ]
    lines = text.split("\n")
    for chunk in doc.chunks:
        assert lines[chunk.start_line - 1] in chunk.text
    assert doc.title == "Guide"


def test_title_falls_back_to_the_file_name():
    assert parse("no headings here\n").title == "doc"


def test_long_sections_are_packed_with_overlap_and_never_exceed_the_limit():
    paragraphs = "\n\n".join(f"Paragraph {i} " + "word " * 10 for i in range(20))
    doc = parse("# Long\n\n" + paragraphs + "\n")
    assert len(doc.chunks) > 3
    assert all(c.token_count <= POLICY.max_tokens for c in doc.chunks)
    assert all(count(c.embed_text) == c.token_count for c in doc.chunks)
    # Consecutive chunks share whole paragraphs (overlap) and cover every paragraph.
    assert doc.chunks[1].start_line <= doc.chunks[0].end_line  # inclusive ranges overlap
    covered = " ".join(c.text for c in doc.chunks)
    for i in range(20):
        assert f"Paragraph {i} " in covered


def test_fenced_code_is_never_cut_mid_fence():
    code = "\n".join(f"let x{i} = compute({i}, {i} * 2) + offset;" for i in range(120))
    doc = parse(f"# Code\n\n```rust\n{code}\n```\n\nAfter the fence.\n")
    fenced = [c for c in doc.chunks if "let x" in c.text]
    assert len(fenced) > 1
    for chunk in fenced:
        assert chunk.text.count("```") % 2 == 0
        assert chunk.text.lstrip().startswith("```rust")
        assert chunk.token_count <= POLICY.max_tokens
    joined = "\n".join(c.text for c in fenced)
    for i in range(120):
        assert f"let x{i} =" in joined


def test_a_giant_line_and_a_giant_word_are_split_not_truncated():
    giant_word = "x" * 5000
    doc = parse("# T\n\n" + "alpha " * 400 + "\n\n" + giant_word + "\n")
    assert all(c.token_count <= POLICY.max_tokens for c in doc.chunks)
    assert sum(c.text.count("alpha") for c in doc.chunks) >= 400
    assert "".join(c.text for c in doc.chunks).count("x") >= 5000


def test_long_heading_paths_do_not_crowd_out_the_text():
    heading = "# " + "very long heading words " * 30
    doc = parse(heading + "\n\nbody text here\n")
    assert all(c.token_count <= POLICY.max_tokens for c in doc.chunks)
    assert any("body text here" in c.text for c in doc.chunks)


def test_crlf_and_empty_sections():
    doc = parse("# A\r\n\r\n## B\r\ntext\r\n")
    assert [c.heading_path for c in doc.chunks] == [("A", "B")]
    assert doc.chunks[0].start_line == 3


def test_the_text_hash_changes_with_the_heading_context():
    a = parse("# One\nsame text\n").chunks[0]
    b = parse("# Two\nsame text\n").chunks[0]
    assert a.text_hash != b.text_hash


def _book_chapter() -> str:
    """A long chapter shaped like a programming book: deep headings, prose, many fences."""
    parts = ["# Chapter 8: Common Collections", "", "Intro paragraph. " * 20, ""]
    for section in range(6):
        parts += [f"## Section {section}: Vectors and maps", "", "Prose explaining it. " * 30, ""]
        for sub in range(3):
            parts += [f"### Listing {section}.{sub}", "", "Consider this code:", "", "```rust"]
            parts += [f"let v{i}: Vec<i32> = Vec::new(); // step {i}" for i in range(25)]
            parts += [
                "```",
                "",
                "> Note: a blockquote with *emphasis*.",
                "",
                "- item one",
                "- item two",
                "",
            ]
    return "\n".join(parts)


def test_a_long_book_chapter():
    text = _book_chapter()
    doc = parse(text, ChunkingPolicy.for_model(256))
    assert len(doc.chunks) > 20
    assert all(c.token_count <= 256 for c in doc.chunks)
    lines = text.split("\n")
    for chunk in doc.chunks:
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
        assert chunk.text.count("```") % 2 == 0
    assert doc.chunks[-1].heading_path == (
        "Chapter 8: Common Collections",
        "Section 5: Vectors and maps",
        "Listing 5.2",
    )


def test_a_heading_never_makes_a_chunk_of_its_own():
    """When the body does not fit beside its heading, the heading folds into the body's
    chunk (the heading path carries its words) instead of a one-line chunk that would
    outrank the body in a search for its words."""
    body = " ".join(f"w{i}" for i in range(POLICY.max_tokens - 20))
    doc = parse(f"# Guide\n\n## Installation\n\n{body}\n\n## Next\n\nshort\n")
    assert all(c.text.strip() not in ("# Guide", "## Installation") for c in doc.chunks)
    install = [c for c in doc.chunks if c.heading_path == ("Guide", "Installation")]
    assert install and install[0].start_line == 3  # the range starts at the heading
    assert all(c.token_count <= POLICY.max_tokens for c in doc.chunks)


class _Counting:
    """The test's token counter, recording how many characters it was given."""

    def __init__(self) -> None:
        self.chars = 0

    def __call__(self, text: str) -> int:
        self.chars += len(text)
        return count(text)


def _one_line(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


def test_a_long_line_costs_tokenizer_work_linear_in_its_length():
    """Each piece of a long line is found by counting about as much text as the piece, not
    the whole rest of the line: the characters given to the tokenizer stay a small multiple
    of the line's (they were 25x at 30 KB and 55x at 100 KB, growing with the length)."""
    ratios = []
    for words in (5_000, 20_000, 80_000):
        text = _one_line(words)
        counter = _Counting()
        doc = parse_markdown(text, file_stem="doc", count_tokens=counter, policy=POLICY)
        ratios.append(counter.chars / len(text))
        assert all(c.token_count <= POLICY.max_tokens for c in doc.chunks)
        assert all(count(c.embed_text) == c.token_count for c in doc.chunks)
        # Every word is in a chunk, and each chunk holds a run of consecutive words.
        seen: set[int] = set()
        for chunk in doc.chunks:
            numbers = [int(word[1:]) for word in chunk.text.split()]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            seen.update(numbers)
        assert seen == set(range(words))
    assert max(ratios) < 8, ratios


def test_many_long_lines_and_a_long_fence_cost_linear_work():
    lines = "\n".join(_one_line(30) for _ in range(4_000))
    fence = "```text\n" + "\n".join(_one_line(12) for _ in range(4_000)) + "\n```"
    for text in (lines, fence):
        counter = _Counting()
        doc = parse_markdown(text, file_stem="doc", count_tokens=counter, policy=POLICY)
        assert counter.chars / len(text) < 8
        assert all(c.token_count <= POLICY.max_tokens for c in doc.chunks)


def test_a_ten_megabyte_line_is_chunked():
    """A 10 MB one-line file (the largest max_file_bytes lets in): chunked with bounded
    tokenizer work; before, it ran for more than 11 minutes at 1.7 GB."""
    text = _one_line(1_300_000)
    assert len(text) > 10_000_000
    counter = _Counting()
    doc = parse_markdown(text, file_stem="doc", count_tokens=counter, policy=POLICY)
    assert counter.chars / len(text) < 8
    assert all(c.token_count <= POLICY.max_tokens for c in doc.chunks)
    assert doc.chunks[0].text.startswith("w0 w1 ") and doc.chunks[-1].text.endswith("w1299999")


def test_a_heading_as_long_as_a_file_costs_linear_work():
    text = "# " + _one_line(100_000) + "\n\nbody text\n"
    counter = _Counting()
    doc = parse_markdown(text, file_stem="doc", count_tokens=counter, policy=POLICY)
    assert counter.chars / len(text) < 8
    assert all(c.token_count <= POLICY.max_tokens for c in doc.chunks)
    assert doc.chunks[-1].text.endswith("body text")
    assert count(doc.chunks[-1].context) <= POLICY.max_tokens // 4
