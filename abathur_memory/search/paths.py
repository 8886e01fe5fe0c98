"""path_glob: globs over paths inside a root."""

from __future__ import annotations

import re
from collections.abc import Callable

from abathur_memory.errors import InvalidInput


def path_matcher(pattern: str) -> Callable[[str], bool]:
    """A glob matched against the path inside the root, case-sensitive: ``*`` and ``?``
    stay within one folder, ``**`` spans folders (``guides/*.md``, ``**/setup*.md``)."""
    if not pattern or len(pattern) > 512:
        raise InvalidInput("path_glob must be 1 to 512 characters")
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            regex += "[" + body.replace("\\", "\\\\") + "]"
            i = end + 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    compiled = re.compile(regex + r"\Z")
    return lambda path: compiled.match(path) is not None
