"""The SOP of a deployed process version, rendered from the stored deployment (cf. ``services.sop``).

A deployed file never changes, so a version's handbook never changes either (only its approval
state does, when the version is retired); rendered pages are kept in a small in-process cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..repository.service import DefinitionService
from ..store.models import ProcessDefinition
from .diff import diff_sops, render_sop_diff_html
from .html import documented_owner, render_sop_html

_CACHE_SIZE = 64


@dataclass(frozen=True)
class SopPage:
    """A rendered handbook with the version it describes."""

    key: str
    version: int
    html: str
    etag: str


def sop_state(definition: ProcessDefinition) -> str:
    """``published``, ``draft`` or ``retired``: what the handbook shows as its approval state."""
    if definition.retired_at is not None:
        return "retired"
    return definition.sop_state or "draft"


class SopService:
    """Publishes the SOP handbooks of deployed versions (publishing a version is deploying it)."""

    def __init__(self, definitions: DefinitionService) -> None:
        self.definitions = definitions
        self._cache: OrderedDict[tuple, SopPage] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, key: str, version: int | None = None, *, link_prefix: str | None = "") -> SopPage:
        """The handbook of ``key`` at ``version`` (default: the latest version that is not retired).

        Raises NotFound when there is no such version.
        """
        definition = self.definitions.get(key, version)
        state = sop_state(definition)
        cache_key = (definition.id, definition.deployment.sha256, state, link_prefix)
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is not None:
                self._cache.move_to_end(cache_key)
                return cached
        document = self.definitions.document_of(definition)
        published_at = definition.sop_published_at or definition.created_at
        html = render_sop_html(
            document,
            definition.key,
            version=definition.version,
            owner=documented_owner(document, definition.key) or definition.owner,
            state=state,
            published_at=published_at,
            link_prefix=link_prefix,
        )
        page = SopPage(definition.key, definition.version, html,
                       etag=f"{definition.deployment.sha256[:32]}-{definition.version}-{state}")
        with self._lock:
            self._cache[cache_key] = page
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return page

    def diff(self, key: str, old_version: int, new_version: int, *, link_prefix: str = "") -> str:
        """A page of what changed in the SOP of ``key`` from one version to another (NotFound if either
        version does not exist)."""
        old = self.definitions.get(key, old_version)
        new = self.definitions.get(key, new_version)
        comparison = diff_sops(
            self.definitions.document_of(old), self.definitions.document_of(new), key,
            old_version=old.version, new_version=new.version,
        )
        return render_sop_diff_html(comparison, link_prefix=link_prefix)
