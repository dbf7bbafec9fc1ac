"""timm's model names, read from its installed source instead of importing it (timm, and the
torch it imports, take seconds to load; a space check should answer a typo in one or two).

Every timm architecture is a function decorated with ``@register_model`` in ``timm/models/``, so a
scan of those files for the decorator gives exactly ``timm.list_models()``; the deprecated names
``timm.is_model`` also accepts come from each file's ``register_model_deprecations(__name__, {...})``
literal. ``tests/trainable/test_names.py`` compares both with timm's own registry.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import io
import re
import tokenize
from pathlib import Path
from typing import Any

from trainable.names import CUSTOM_BACKBONES

REGISTERED = re.compile(r"@register_model\s*\n\s*def\s+(\w+)\s*\(")
DEPRECATIONS = re.compile(r"^register_model_deprecations\(", re.MULTILINE)


def timm_models_folder() -> Path | None:
    """``timm/models/`` of the installed timm, found without importing it; None without timm."""
    spec = importlib.util.find_spec("timm")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) / "models" if locations else None


def _call_source(text: str, start: int) -> str:
    """The source of the call that begins at ``start``, up to its closing parenthesis (strings
    and comments read as tokens, so a bracket inside one does not count)."""
    depth, lines = 0, text[start:].splitlines(keepends=True)
    for token in tokenize.generate_tokens(io.StringIO("".join(lines)).readline):
        if token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
            if depth == 0:
                row, col = token.end
                return "".join(lines[:row - 1]) + lines[row - 1][:col]
    raise ValueError(f"an unclosed call at character {start}")


def deprecated_names(text: str) -> dict[str, str | None]:
    """The deprecated model names of one timm source file -> the current name (None: removed)."""
    found: dict[str, str | None] = {}
    for match in DEPRECATIONS.finditer(text):
        call = ast.parse(_call_source(text, match.start()), mode="eval").body
        found.update(ast.literal_eval(call.args[1]))
    return found


@functools.lru_cache(maxsize=None)
def timm_names() -> tuple[frozenset[str], frozenset[str]]:
    """(``timm.list_models()``, the deprecated names) of the installed timm, read once a process."""
    folder = timm_models_folder()
    registered: set[str] = set()
    deprecated: set[str] = set()
    try:
        for path in sorted(folder.rglob("*.py")) if folder else ():
            text = path.read_text(encoding="utf-8")
            registered.update(REGISTERED.findall(text))
            deprecated.update(deprecated_names(text))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        registered = set()  # a timm whose source reads otherwise: ask timm itself, slower
    if folder is not None and not registered:
        import timm.models

        return frozenset(timm.list_models()), frozenset(timm.models.get_deprecated_models())
    return frozenset(registered), frozenset(deprecated)


def is_backbone(name: Any) -> bool:
    """Whether ``name`` is a custom backbone or a model ``timm.is_model`` knows (a pretrained tag,
    ``resnet50.a1_in1k``, ignored)."""
    if not isinstance(name, str):
        return False
    registered, deprecated = timm_names()
    arch = name.split(".", 1)[0]
    return name in CUSTOM_BACKBONES or arch in registered or arch in deprecated


def close_backbones(name: Any, limit: int = 5) -> list[str]:
    """The known backbones closest to ``name`` (difflib's ratio), best first."""
    registered, _ = timm_names()
    return difflib.get_close_matches(str(name), sorted(registered | set(CUSTOM_BACKBONES)), n=limit, cutoff=0.6)
