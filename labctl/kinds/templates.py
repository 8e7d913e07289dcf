"""Jinja2 templates of the kinds: each kind package keeps its own under `templates/`.

Imported only when something is rendered (a kind module imports it inside its renderer),
so `labctl validate` never loads Jinja2.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2


@functools.cache
def _environment(package: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails, never renders empty
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_template(package: str, name: str, **values: Any) -> str:
    """Render `templates/<name>` of a kind package (e.g. "labctl.kinds.pat_firewall")."""
    return _environment(package).get_template(name).render(**values)
