"""Chinese, Japanese and Korean text made findable by keyword: overlapping character pairs.

Both keyword engines cut text into words at spaces and punctuation (FTS5's unicode61, and
PostgreSQL's parser), so a run of CJK characters, which has no spaces, is one "word": in
``東京都に住んでいます`` neither ``東京`` nor ``住んで`` can be found. The usual remedy,
used by Lucene's CJK analyzer, is to index each run as its characters and its overlapping
pairs (bigrams), and to search a run of the query as its pairs, which both engines then
match as ordinary words. Applied identically when indexing (a ``grams`` companion of each
chunk) and when querying (``query_grams``), it needs nothing from either engine.

Latin letters glued to CJK (``Python入門``) are one word to the engines too; their pieces
are indexed and searched as words of their own.
"""

from __future__ import annotations

import re

# Scripts written without spaces between words: Han (with its extensions and compatibility
# forms), kana, Hangul (Korean spaces words but glues particles to them: 서울에서), Bopomofo,
# and the iteration marks 々, 〆, 〇. CJK punctuation (、。・「」) is not included: both
# engines already treat it as a separator.
CJK_RANGES = (
    ("\u1100", "\u11ff"),  # Hangul Jamo
    ("\u3005", "\u3007"),  # 々 〆 〇
    ("\u3041", "\u309f"),  # Hiragana
    ("\u30a1", "\u30fa"),  # Katakana (without ゠ and ・)
    ("\u30fc", "\u30ff"),  # ー ヽ ヾ ヿ
    ("\u3105", "\u312f"),  # Bopomofo
    ("\u3131", "\u318e"),  # Hangul compatibility Jamo
    ("\u31a0", "\u31bf"),  # Bopomofo extended
    ("\u31f0", "\u31ff"),  # Katakana phonetic extensions
    ("\u3400", "\u4dbf"),  # CJK extension A
    ("\u4e00", "\u9fff"),  # CJK unified ideographs
    ("\ua960", "\ua97f"),  # Hangul Jamo extended A
    ("\uac00", "\ud7af"),  # Hangul syllables
    ("\ud7b0", "\ud7ff"),  # Hangul Jamo extended B
    ("\uf900", "\ufaff"),  # CJK compatibility ideographs
    ("\uff66", "\uff9f"),  # halfwidth Katakana
    ("\uffa0", "\uffdc"),  # halfwidth Hangul
    ("\U00020000", "\U0003134f"),  # CJK extensions B to G
)
CJK_CLASS = "[" + "".join(f"{low}-{high}" for low, high in CJK_RANGES) + "]"
_CJK = re.compile(CJK_CLASS)
_CJK_RUN = re.compile(CJK_CLASS + "+")
_WORD = re.compile(r"\w+")


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def index_grams(*texts: str) -> str:
    """What the keyword index holds besides the text: for each CJK run, its characters and
    overlapping pairs; for a word mixing CJK and other letters, its other pieces. Empty for
    text without CJK (nearly all of an English corpus)."""
    grams: list[str] = []
    for text in texts:
        if not has_cjk(text):
            continue
        for word in _WORD.findall(text):
            if not has_cjk(word):
                continue
            for piece, is_cjk in _pieces(word):
                if is_cjk:
                    grams.extend(piece)
                    grams.extend(_pairs(piece))
                else:
                    grams.append(piece)
    return " ".join(grams)


def query_grams(word: str) -> list[str]:
    """The terms that find ``word`` (one word of a query) among index_grams: a CJK run as
    its pairs (one character alone as itself), other letters glued to it as they are."""
    terms: list[str] = []
    for piece, is_cjk in _pieces(word):
        if is_cjk:
            terms.extend(_pairs(piece) or [piece])
        else:
            terms.append(piece)
    return terms


def _pieces(word: str) -> list[tuple[str, bool]]:
    """``word`` cut into CJK runs and the other pieces between them, in order."""
    pieces: list[tuple[str, bool]] = []
    at = 0
    for run in _CJK_RUN.finditer(word):
        if run.start() > at:
            pieces.append((word[at : run.start()], False))
        pieces.append((run.group(), True))
        at = run.end()
    if at < len(word):
        pieces.append((word[at:], False))
    return [(piece, is_cjk) for piece, is_cjk in pieces if is_cjk or piece.strip("_")]


def _pairs(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]
