"""Deploy BPMN files as versioned process definitions, and read them back byte for byte.

A deployment is one uploaded file. Each ``bpmn:process`` in it becomes a process definition with
the next version of its key. Deploying the very same bytes again returns the existing deployment
(deduplicated by SHA-256); concurrent deploys of one key get distinct consecutive versions.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..audit import events
from ..audit.chain import record, record_many
from ..clock import Clock
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..identity.principal import Principal
from ..parser.document import BpmnDocument
from ..parser.findings import Finding, errors_for_process
from ..parser.validation import validate
from ..settings import Settings
from ..store import Database
from ..store.models import Deployment, ProcessDefinition

_DEPLOY_ATTEMPTS = 8


@dataclass
class DeploymentResult:
    """What a deploy produced: the deployment, its definitions, and whether it already existed."""

    deployment: Deployment
    definitions: list[ProcessDefinition]
    findings: list[Finding]
    created: bool


@dataclass
class DefinitionPage:
    items: list[ProcessDefinition]
    total: int
    offset: int
    limit: int


@dataclass
class DocumentCache:
    """Parsed documents by deployment id (a deployment's bytes never change)."""

    documents: dict[int, BpmnDocument] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class DefinitionService:
    """The public surface of the model repository (cf. Camunda's RepositoryService)."""

    def __init__(self, database: Database, clock: Clock, settings: Settings) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        self._cache = DocumentCache()

    # -- parsing -------------------------------------------------------------------------------
    def parse(self, source: bytes, name: str = "model.bpmn") -> BpmnDocument:
        """Load bytes with the server's limits (size, depth, element count)."""
        return BpmnDocument.load(
            source,
            name,
            max_bytes=self.settings.max_upload_bytes,
            max_depth=self.settings.max_xml_depth,
            max_elements=self.settings.max_xml_elements,
        )

    def validate(self, source: bytes, name: str = "model.bpmn") -> tuple[BpmnDocument, list[Finding]]:
        """Parse and validate without deploying; load errors raise, findings are returned."""
        document = self.parse(source, name)
        return document, validate(document)

    # -- deploy --------------------------------------------------------------------------------
    def deploy(self, source: bytes, name: str, deployed_by: str) -> DeploymentResult:
        """Store the file and create one definition version per process it contains."""
        document, findings = self.validate(source, name)
        processes = document.processes()
        if not processes:
            raise InvalidInput(f"{name} contains no bpmn:process to deploy", rule="no-process")
        sha256 = hashlib.sha256(source).hexdigest()
        for _attempt in range(_DEPLOY_ATTEMPTS):
            try:
                with self.database.transaction() as session:
                    existing = session.scalar(select(Deployment).where(Deployment.sha256 == sha256))
                    if existing is not None:
                        definitions = self._definitions_of(session, existing.id)
                        return DeploymentResult(existing, definitions, findings, created=False)
                    result = self._create_deployment(session, document, findings, name, deployed_by)
                self._cache.documents[result.deployment.id] = document
                return result
            except IntegrityError:
                continue  # another deploy took the same version number or the same file: look again
        raise Conflict(f"could not deploy {name}: too many concurrent deployments of the same process keys")

    def _create_deployment(
        self, session: Session, document: BpmnDocument, findings: list[Finding], name: str, deployed_by: str
    ) -> DeploymentResult:
        now = self.clock.now()
        deployment = Deployment(
            name=name,
            sha256=document.sha256,
            source=document.source,
            size=len(document.source),
            tool=document.exporter,
            deployed_by=deployed_by,
            deployed_at=now,
        )
        session.add(deployment)
        session.flush()
        definitions = []
        for process in document.processes():
            version = (
                session.scalar(select(func.max(ProcessDefinition.version)).where(ProcessDefinition.key == process.id))
                or 0
            ) + 1
            own_findings = [f for f in findings if f.process_id in (None, process.id)]
            definition = ProcessDefinition(
                key=process.id,
                version=version,
                name=process.name,
                deployment=deployment,
                executable=process.is_executable,
                owner=deployed_by,
                findings=[f.as_dict() for f in own_findings],
                error_count=len(errors_for_process(findings, process.id)),
                created_at=now,
                sop_state="published",  # publishing a version's SOP is deploying it (docs/sop.md)
                sop_published_at=now,
                sop_published_by=deployed_by,
            )
            session.add(definition)
            session.flush()
            definitions.append(definition)
            common = {"actor": deployed_by, "timestamp": now, "definition_key": definition.key,
                      "definition_version": definition.version}
            record_many(session, [  # one chained INSERT for both
                {"event_type": events.MODEL_DEPLOYED, **common,
                 "data": {"deployment": deployment.id, "file": name, "sha256": deployment.sha256,
                          "errors": definition.error_count}},
                {"event_type": events.SOP_PUBLISHED, **common,
                 "data": {"sop": f"/sop/{definition.key}/v/{definition.version}"}},
            ])
        return DeploymentResult(deployment, definitions, findings, created=True)

    # -- queries -------------------------------------------------------------------------------
    def list_definitions(
        self,
        *,
        key: str | None = None,
        latest_only: bool = False,
        include_retired: bool = True,
        executable: bool | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> DefinitionPage:
        """Definitions ordered by key then version, filtered and paginated."""
        with self.database.read() as session:
            query = select(ProcessDefinition)
            if key is not None:
                query = query.where(ProcessDefinition.key == key)
            if not include_retired:
                query = query.where(ProcessDefinition.retired_at.is_(None))
            if executable is not None:
                query = query.where(ProcessDefinition.executable.is_(executable))
            if latest_only:
                latest = (
                    select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version"))
                    .group_by(ProcessDefinition.key)
                )
                if not include_retired:
                    latest = latest.where(ProcessDefinition.retired_at.is_(None))
                latest = latest.subquery()
                query = query.join(
                    latest,
                    (latest.c.key == ProcessDefinition.key) & (latest.c.version == ProcessDefinition.version),
                )
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            items = session.scalars(
                query.order_by(ProcessDefinition.key, ProcessDefinition.version).offset(offset).limit(limit)
            ).all()
            return DefinitionPage(list(items), total, offset, limit)

    def get(self, key: str, version: int | None = None, *, session: Session | None = None) -> ProcessDefinition:
        """One version of a key, or its latest version that is not retired."""
        if session is None:
            with self.database.read() as own:
                return self.get(key, version, session=own)
        definition = session.scalars(_GET_ONE[version is None], {"key": key, "version": version}).first()
        if definition is None:
            raise _no_version(key, version)
        return definition

    def locate(self, key: str, version: int | None = None) -> tuple[int, datetime | None]:
        """The id of ``get(key, version)``'s definition and when it was retired, with one Core SELECT
        (a start needs no more: the other columns it reads never change after the deploy)."""
        with self.database.query() as connection:
            row = connection.execute(_LOCATE_ONE[version is None], {"key": key, "version": version}).first()
        if row is None:
            raise _no_version(key, version)
        return row.id, row.retired_at

    def locate_id(self, definition_id: int) -> datetime | None:
        """When the definition ``definition_id`` was retired (None: it is not), or NotFound."""
        with self.database.query() as connection:
            row = connection.execute(_LOCATE_ID, {"definition_id": definition_id}).first()
        if row is None:
            raise NotFound(f"there is no process definition {definition_id}")
        return row.retired_at

    def get_by_id(self, definition_id: int, *, session: Session | None = None) -> ProcessDefinition:
        if session is None:
            with self.database.read() as own:
                return self.get_by_id(definition_id, session=own)
        definition = session.get(ProcessDefinition, definition_id)
        if definition is None:
            raise NotFound(f"there is no process definition {definition_id}")
        return definition

    def get_deployment(self, deployment_id: int) -> tuple[Deployment, list[ProcessDefinition]]:
        with self.database.read() as session:
            deployment = session.get(Deployment, deployment_id)
            if deployment is None:
                raise NotFound(f"there is no deployment {deployment_id}")
            return deployment, self._definitions_of(session, deployment_id)

    def source_of(self, definition: ProcessDefinition) -> bytes:
        """The deployed file's exact bytes."""
        return definition.deployment.source

    def document_of(self, definition: ProcessDefinition) -> BpmnDocument:
        """The parsed document of a definition's deployment (cached; never modified)."""
        with self._cache.lock:
            document = self._cache.documents.get(definition.deployment_id)
        if document is None:
            deployment = self._deployment_of(definition)
            document = BpmnDocument.load(deployment.source, deployment.name, max_bytes=max(
                len(deployment.source), self.settings.max_upload_bytes))
            with self._cache.lock:
                self._cache.documents[deployment.id] = document
        return document

    def _deployment_of(self, definition: ProcessDefinition) -> Deployment:
        """The definition's deployment: as loaded with it, else read by id (a detached lean definition)."""
        if "deployment" not in inspect(definition).unloaded:
            return definition.deployment
        with self.database.read() as session:
            return session.get(Deployment, definition.deployment_id)

    def findings_of(self, definition: ProcessDefinition) -> list[Finding]:
        return [Finding.from_dict(item) for item in definition.findings or []]

    # -- retire --------------------------------------------------------------------------------
    def retire(self, key: str, version: int, principal: Principal) -> ProcessDefinition:
        """Stop new instances of a version; running instances keep it (owner or admin only)."""
        retired_by = principal.username
        with self.database.transaction() as session:
            definition = self.get(key, version, session=session)
            if not principal.is_admin and definition.owner != principal.username:
                raise Forbidden(f"only the owner ({definition.owner}) or an administrator may retire {key} v{version}")
            if definition.retired_at is not None:
                return definition
            now = self.clock.now()
            definition.retired_at = now
            definition.retired_by = retired_by
            record(
                session,
                events.MODEL_RETIRED,
                actor=retired_by,
                timestamp=now,
                definition_key=key,
                definition_version=version,
            )
            return definition

    @staticmethod
    def _definitions_of(session: Session, deployment_id: int) -> list[ProcessDefinition]:
        return list(
            session.scalars(
                select(ProcessDefinition)
                .where(ProcessDefinition.deployment_id == deployment_id)
                .order_by(ProcessDefinition.id)
            ).all()
        )


_LOCATE = select(ProcessDefinition.id, ProcessDefinition.retired_at)


def _version_query(query, latest: bool):
    """``query`` narrowed to one version of the bound ``key`` (``version``), or to its latest version that
    is not retired; built once per use, executed with ``{"key": …, "version": …}``."""
    query = query.where(ProcessDefinition.key == bindparam("key"))
    if latest:
        query = query.where(ProcessDefinition.retired_at.is_(None)).order_by(ProcessDefinition.version.desc())
    else:
        query = query.where(ProcessDefinition.version == bindparam("version"))
    return query.limit(1)


# built once with bound values (a start locates its definition every time); indexed by "latest?"
_LOCATE_ID = _LOCATE.where(ProcessDefinition.id == bindparam("definition_id"))
_LOCATE_ONE = {latest: _version_query(_LOCATE, latest) for latest in (False, True)}
_GET_ONE = {latest: _version_query(select(ProcessDefinition), latest) for latest in (False, True)}


def _no_version(key: str, version: int | None) -> NotFound:
    which = f"version {version} of " if version is not None else "an active version of "
    return NotFound(f"there is no {which}process '{key}'", key=key, version=version)
