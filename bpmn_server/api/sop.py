"""The SOP handbook of a process version over the REST API (HTML, the same page as ``/sop/<key>/v/<n>``)."""

from __future__ import annotations

from flask import Response, request
from flask.views import MethodView

from .arguments import Blueprint
from .auth import current_principal, services
from .rate_limits import expensive

blp = Blueprint("sop", __name__, url_prefix="/api/v1", description="SOP handbooks")


@blp.route("/process-definitions/<key>/versions/<int:version>/sop")
class DefinitionSop(MethodView):
    @blp.doc(responses={"200": {"description": "the SOP handbook: one self-contained HTML page",
                                "content": {"text/html": {"schema": {"type": "string"}}}}})
    @expensive(blp)
    def get(self, key: str, version: int):
        """The SOP handbook of one process version as HTML (inline CSS and SVG, no scripts)."""
        current_principal()
        page = services().sop.page(key, version, link_prefix="")
        response = Response(page.html, mimetype="text/html")
        response.set_etag(page.etag)
        return response.make_conditional(request)
