"""Token counting with the BERT uncased WordPiece vocabulary.

all-MiniLM-L6-v2 (the embedded model) and nomic-embed-text (Ollama) both use it, so chunks
can be sized exactly for either. The tokenizer file (sentence-transformers' tokenizer.json,
Apache-2.0: see data/NOTICE) ships inside this package and is read with importlib.resources,
so it works from a wheel as well as from a checkout.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from tokenizers import Tokenizer

from abathur_memory.errors import Unavailable

_TOKENIZER_PACKAGE = "abathur_memory.embedders"
_TOKENIZER_FILE = "tokenizer.json"  # in the package's data/ directory


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(f"the package {package} is not installed (pip install {package})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise Unavailable(f"{relative} is missing from the installed package {package}")
    return path


def tokenizer_file() -> Traversable:
    """The tokenizer.json shipped in this package (abathur_memory.embedders/data)."""
    return files(_TOKENIZER_PACKAGE) / "data" / _TOKENIZER_FILE


@cache
def bert_tokenizer() -> Tokenizer:
    """The WordPiece tokenizer, with the file's truncation and padding switched off."""
    resource = tokenizer_file()
    if not resource.is_file():
        raise Unavailable(
            f"{resource} is missing from the installed abathur-memory; reinstall it: "
            f"pip install --force-reinstall abathur-memory"
        )
    tokenizer = Tokenizer.from_str(resource.read_text(encoding="utf-8"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class BertTokenCounter:
    def __init__(self) -> None:
        self._tokenizer = bert_tokenizer()

    def count(self, text: str) -> int:
        """Tokens including [CLS] and [SEP]."""
        return len(self._tokenizer.encode(text).ids)
