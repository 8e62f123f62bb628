"""Process definitions and deployments: deploy, validate, list, fetch, download XML, retire."""

from __future__ import annotations

from flask import Response, request
from flask.views import MethodView
from marshmallow import Schema, fields

from ..errors import InvalidInput, PreconditionFailed
from ..parser.findings import has_errors
from ..repository.service import DeploymentResult
from .arguments import Blueprint
from .auth import current_principal, services
from .rate_limits import expensive
from .schemas import FindingSchema, PageQuerySchema, PageSchema

blp = Blueprint("definitions", __name__, url_prefix="/api/v1", description="Model repository")

XML_TYPES = ("application/xml", "text/xml", "application/bpmn+xml", "application/octet-stream")


class DefinitionSchema(Schema):
    id = fields.Integer(required=True)
    key = fields.String(required=True)
    version = fields.Integer(required=True)
    name = fields.String(allow_none=True)
    executable = fields.Boolean(required=True)
    startable = fields.Method("get_startable", metadata={"description": "executable, no errors, not retired"})
    owner = fields.String(allow_none=True)
    deployment_id = fields.Integer(required=True)
    error_count = fields.Integer(required=True)
    findings = fields.List(fields.Nested(FindingSchema))
    sop_state = fields.String()
    retired_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    links = fields.Method("get_links")

    def get_startable(self, definition) -> bool:
        return bool(definition.executable and definition.error_count == 0 and definition.retired_at is None)

    def get_links(self, definition) -> dict[str, str]:
        base = f"/api/v1/process-definitions/{definition.key}/versions/{definition.version}"
        return {"self": base, "xml": f"{base}/xml", "sop": f"/sop/{definition.key}/v/{definition.version}"}


class DefinitionPageSchema(PageSchema):
    items = fields.List(fields.Nested(DefinitionSchema), required=True)


class DefinitionQuerySchema(PageQuerySchema):
    key = fields.String()
    latest_only = fields.Boolean(load_default=False, data_key="latestOnly")
    include_retired = fields.Boolean(load_default=True, data_key="includeRetired")
    executable = fields.Boolean()


class DeploymentSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    sha256 = fields.String(required=True)
    size = fields.Integer()
    tool = fields.String(allow_none=True)
    deployed_by = fields.String()
    deployed_at = fields.DateTime()
    created = fields.Boolean(metadata={"description": "false when the same file was deployed before"})
    definitions = fields.List(fields.Nested(DefinitionSchema))
    findings = fields.List(fields.Nested(FindingSchema))


class ValidationResultSchema(Schema):
    name = fields.String()
    valid = fields.Boolean(required=True, metadata={"description": "no error-level findings"})
    error_count = fields.Integer()
    warning_count = fields.Integer()
    tool = fields.String(allow_none=True)
    processes = fields.List(fields.Dict())
    findings = fields.List(fields.Nested(FindingSchema))


class UploadSchema(Schema):
    file = fields.Raw(metadata={"type": "string", "format": "binary"})
    name = fields.String()


_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                           "required": ["file"]}
            },
            "application/xml": {"schema": {"type": "string"}},
        },
    },
    "parameters": [{"in": "query", "name": "name", "schema": {"type": "string"},
                    "description": "file name when the body is raw XML"}],
}


def uploaded_file() -> tuple[bytes, str]:
    """The BPMN bytes of a multipart upload (field ``file``) or of a raw XML body."""
    if request.files:
        upload = request.files.get("file") or next(iter(request.files.values()))
        return upload.read(), upload.filename or "model.bpmn"
    content_type = (request.mimetype or "").lower()
    if content_type in XML_TYPES or content_type.endswith("+xml"):
        data = request.get_data(cache=False)
        return data, request.args.get("name") or "model.bpmn"
    raise InvalidInput(
        "send the BPMN file as multipart/form-data (field 'file') or as an application/xml body",
        errors=[{"field": "file", "message": "missing"}],
    )


def _deployment_body(result) -> dict:
    deployment = result.deployment
    return {
        "id": deployment.id,
        "name": deployment.name,
        "sha256": deployment.sha256,
        "size": deployment.size,
        "tool": deployment.tool,
        "deployed_by": deployment.deployed_by,
        "deployed_at": deployment.deployed_at,
        "created": result.created,
        "definitions": result.definitions,
        "findings": [f.as_dict() for f in result.findings],
    }


@blp.route("/deployments")
class Deployments(MethodView):
    @blp.doc(**_UPLOAD_DOC)
    @blp.response(201, DeploymentSchema, description="deployed (200 when the same file was deployed before)")
    @expensive(blp)
    def post(self):
        """Deploy a BPMN file: every process in it becomes the next version of its key."""
        principal = current_principal()
        data, name = uploaded_file()
        result = services().definitions.deploy(data, name, principal.username)
        return _deployment_body(result), 201 if result.created else 200


@blp.route("/deployments/<int:deployment_id>")
class DeploymentResource(MethodView):
    @blp.response(200, DeploymentSchema)
    def get(self, deployment_id: int):
        """One deployment with the definitions it created."""
        current_principal()
        deployment, definitions = services().definitions.get_deployment(deployment_id)
        findings = [f for d in definitions for f in d.findings]
        unique = list({(f.get("rule"), f.get("element_id"), f.get("line")): f for f in findings}.values())
        body = _deployment_body(DeploymentResult(deployment, definitions, [], created=False))
        return {**body, "findings": unique}


@blp.route("/validations")
class Validations(MethodView):
    @blp.doc(**_UPLOAD_DOC)
    @blp.response(200, ValidationResultSchema)
    @expensive(blp)
    def post(self):
        """Validate a BPMN file without deploying it (XSD + semantic rules)."""
        current_principal()
        data, name = uploaded_file()
        document, findings = services().definitions.validate(data, name)
        return {
            "name": name,
            "valid": not has_errors(findings),
            "error_count": sum(f.severity == "error" for f in findings),
            "warning_count": sum(f.severity == "warning" for f in findings),
            "tool": document.exporter,
            "processes": [
                {"id": p.id, "name": p.name, "executable": p.is_executable} for p in document.processes()
            ],
            "findings": [f.as_dict() for f in findings],
        }


@blp.route("/process-definitions")
class Definitions(MethodView):
    @blp.arguments(DefinitionQuerySchema, location="query")
    @blp.response(200, DefinitionPageSchema)
    def get(self, query):
        """List process definitions (filter by key, latest versions only, executable; paginated)."""
        current_principal()
        return services().definitions.list_definitions(**query)  # the schema reads the Page


@blp.route("/process-definitions/<key>")
class LatestDefinition(MethodView):
    @blp.response(200, DefinitionSchema)
    def get(self, key: str):
        """The latest active version of a process."""
        current_principal()
        return services().definitions.get(key)


@blp.route("/process-definitions/<key>/versions/<int:version>")
class DefinitionVersion(MethodView):
    @blp.response(200, DefinitionSchema)
    def get(self, key: str, version: int):
        """One version of a process."""
        current_principal()
        return services().definitions.get(key, version)


@blp.route("/process-definitions/<key>/versions/<int:version>/xml")
class DefinitionXml(MethodView):
    @blp.doc(responses={"200": {"description": "the deployed file, byte for byte",
                                "content": {"application/xml": {"schema": {"type": "string"}}}}})
    def get(self, key: str, version: int):
        """Download the BPMN XML exactly as it was deployed."""
        current_principal()
        definition = services().definitions.get(key, version)
        source = services().definitions.source_of(definition)
        response = Response(source, mimetype="application/xml")
        response.headers["Content-Disposition"] = f'attachment; filename="{key}-v{version}.bpmn"'
        response.set_etag(definition.deployment.sha256)
        return response.make_conditional(request)


@blp.route("/process-definitions/<key>/versions/<int:version>/retire")
class RetireDefinition(MethodView):
    @blp.response(200, DefinitionSchema)
    def post(self, key: str, version: int):
        """Retire a version: no new instances start on it; running instances continue."""
        principal = current_principal()
        if_match = request.headers.get("If-Match")
        definitions = services().definitions
        if if_match:
            current = definitions.get(key, version)
            if if_match.strip('"') != current.deployment.sha256:
                raise PreconditionFailed("the definition changed since you read it (If-Match)")
        return definitions.retire(key, version, principal)
