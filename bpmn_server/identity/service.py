"""Users, groups, memberships and API tokens; turns a bearer token or password into a Principal.

Tokens are random strings shown once and stored only as SHA-256; passwords are hashed with Argon2id.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..audit import events
from ..audit.chain import record
from ..clock import Clock
from ..errors import Conflict, InvalidInput, NotFound, Unauthenticated
from ..settings import Settings
from ..store import Database
from ..store.models import ApiToken, Group, Membership, User
from .principal import Principal

TOKEN_PREFIX = "bpmns_"
ADMINS_GROUP = "admins"
_passwords = PasswordHasher()


# the user with one row per group (a user in no group: one row, group_name NULL); the lookups below are
# built once with bound values, since one runs for every request
_PRINCIPAL_QUERY = (
    select(User.username, User.active, User.is_admin, Membership.group_name)
    .outerjoin(Membership, Membership.username == User.username)
)
_USER_QUERY = _PRINCIPAL_QUERY.where(User.username == bindparam("username"))  # every page a browser asks for
_TOKEN_QUERY = (
    _PRINCIPAL_QUERY.add_columns(ApiToken.revoked_at, ApiToken.expires_at)
    .join(ApiToken, ApiToken.username == User.username)
    .where(ApiToken.token_hash == bindparam("token_hash"))  # every API request
)


def _principal(rows) -> Principal:
    """The principal of the user in ``rows`` (from ``_PRINCIPAL_QUERY``); deactivated users are refused."""
    first = rows[0]
    if not first.active:
        raise Unauthenticated(f"user '{first.username}' is deactivated")
    groups = frozenset(row.group_name for row in rows if row.group_name is not None)
    return Principal(first.username, groups, is_admin=first.is_admin or ADMINS_GROUP in groups)


@dataclass(frozen=True)
class IssuedToken:
    """A token as shown to its owner exactly once."""

    id: int
    username: str
    name: str
    token: str
    expires_at: object


@dataclass(frozen=True)
class AdminBootstrap:
    username: str
    token: str | None
    created: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class IdentityService:
    """Who may sign in, what groups they are in, and the tokens scripts use."""

    def __init__(self, database: Database, clock: Clock, settings: Settings) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings

    # -- bootstrap -----------------------------------------------------------------------------
    def bootstrap_admin(self) -> AdminBootstrap:
        """Create the first administrator and a token for it, unless an administrator exists."""
        username = self.settings.admin_username
        try:
            with self.database.transaction() as session:
                if session.scalar(select(User).where(User.is_admin.is_(True)).limit(1)) is not None:
                    return AdminBootstrap(username, None, created=False)
                self._create_user(session, username, None, [ADMINS_GROUP], True, "Administrator", None, "system")
                issued = self._issue_token(session, username, "bootstrap", actor="system")
        except IntegrityError:
            return AdminBootstrap(username, None, created=False)  # another process bootstrapped first
        return AdminBootstrap(username, issued.token, created=True)

    # -- users and groups ----------------------------------------------------------------------
    def create_user(
        self,
        username: str,
        *,
        password: str | None = None,
        groups: list[str] | tuple[str, ...] = (),
        is_admin: bool = False,
        display_name: str | None = None,
        email: str | None = None,
        actor: str = "system",
    ) -> User:
        """Create a user (and any group named that does not exist yet)."""
        if not username or len(username) > 255 or username.startswith("system:"):
            raise InvalidInput("a username must be 1-255 characters and not start with 'system:'")
        try:
            with self.database.transaction() as session:
                return self._create_user(session, username, password, list(groups), is_admin, display_name, email, actor)
        except IntegrityError:
            raise Conflict(f"user '{username}' already exists") from None

    def _create_user(self, session: Session, username, password, groups, is_admin, display_name, email, actor) -> User:
        if session.get(User, username) is not None:
            raise Conflict(f"user '{username}' already exists")
        user = User(
            username=username,
            display_name=display_name,
            email=email,
            password_hash=_passwords.hash(password) if password else None,
            is_admin=is_admin,
            created_at=self.clock.now(),
        )
        session.add(user)
        session.flush()
        for group in groups:
            self._ensure_group(session, group)
            session.add(Membership(username=username, group_name=group))
        record(session, events.USER_CREATED, actor=actor, timestamp=self.clock.now(),
                     data={"username": username, "groups": sorted(groups), "admin": is_admin})
        return user

    def set_password(self, username: str, password: str, *, actor: str = "system") -> None:
        with self.database.transaction() as session:
            user = self._user(session, username)
            user.password_hash = _passwords.hash(password)
            record(session, events.USER_UPDATED, actor=actor, timestamp=self.clock.now(),
                   data={"username": username, "changed": ["password"]})

    def add_to_group(self, username: str, group: str, *, actor: str = "system") -> None:
        with self.database.transaction() as session:
            self._user(session, username)
            self._ensure_group(session, group)
            if session.get(Membership, (username, group)) is None:
                session.add(Membership(username=username, group_name=group))
                record(session, events.MEMBERSHIP_CHANGED, actor=actor, timestamp=self.clock.now(),
                       data={"username": username, "added": group})

    def remove_from_group(self, username: str, group: str, *, actor: str = "system") -> None:
        with self.database.transaction() as session:
            membership = session.get(Membership, (username, group))
            if membership is not None:
                session.delete(membership)
                record(session, events.MEMBERSHIP_CHANGED, actor=actor, timestamp=self.clock.now(),
                       data={"username": username, "removed": group})

    def list_users(self) -> list[tuple[User, list[str]]]:
        with self.database.read() as session:
            users = session.scalars(select(User).order_by(User.username)).all()
            return [(user, self._groups_of(session, user.username)) for user in users]

    def list_groups(self) -> list[Group]:
        with self.database.read() as session:
            return list(session.scalars(select(Group).order_by(Group.name)).all())

    def group_members(self, group: str) -> list[str]:
        with self.database.read() as session:
            return list(session.scalars(
                select(Membership.username).where(Membership.group_name == group).order_by(Membership.username)
            ).all())

    def principal_for(self, username: str, *, session: Session | None = None) -> Principal:
        """The principal of an existing, active user (one SELECT: the user with its groups)."""
        if session is None:
            with self.database.query() as connection:
                rows = connection.execute(_USER_QUERY, {"username": username}).all()
        else:
            rows = session.execute(_USER_QUERY, {"username": username}).all()
        if not rows:
            raise NotFound(f"there is no user '{username}'")
        return _principal(rows)

    # -- tokens --------------------------------------------------------------------------------
    def create_token(self, username: str, name: str = "api", *, ttl_days: int | None = None,
                     actor: str | None = None) -> IssuedToken:
        """Issue a new bearer token for a user; the plaintext is returned only here."""
        with self.database.transaction() as session:
            self._user(session, username)
            return self._issue_token(session, username, name, ttl_days=ttl_days, actor=actor or username)

    def _issue_token(self, session: Session, username: str, name: str, *, ttl_days: int | None = None,
                     actor: str) -> IssuedToken:
        now = self.clock.now()
        days = self.settings.token_ttl_days if ttl_days is None else ttl_days
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(
            username=username,
            name=name,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(days=days) if days > 0 else None,
        )
        session.add(row)
        session.flush()
        record(session, events.API_TOKEN_CREATED, actor=actor, timestamp=now,
                     data={"username": username, "token_id": row.id, "name": name})
        return IssuedToken(row.id, username, name, token, row.expires_at)

    def revoke_token(self, token_id: int, principal: Principal) -> None:
        with self.database.transaction() as session:
            row = session.get(ApiToken, token_id)
            if row is None or (row.username != principal.username and not principal.is_admin):
                raise NotFound(f"there is no token {token_id}")
            if row.revoked_at is None:
                row.revoked_at = self.clock.now()
                record(session, events.API_TOKEN_REVOKED, actor=principal.username, timestamp=row.revoked_at,
                       data={"username": row.username, "token_id": row.id})

    def authenticate_token(self, token: str) -> Principal:
        """The principal behind a bearer token; expired, revoked or unknown tokens are refused."""
        with self.database.query() as connection:  # one SELECT: token, user and groups
            rows = connection.execute(_TOKEN_QUERY, {"token_hash": hash_token(token)}).all()
        if not rows:
            raise Unauthenticated("the bearer token is not valid")
        revoked_at, expires_at = rows[0].revoked_at, rows[0].expires_at
        if revoked_at is not None:
            raise Unauthenticated("the bearer token was revoked")
        if expires_at is not None and expires_at <= self.clock.now():
            raise Unauthenticated(f"the bearer token expired at {expires_at.isoformat()}")
        return _principal(rows)

    def authenticate_password(self, username: str, password: str) -> Principal:
        """The principal of a user whose password matches; one vague error for every failure."""
        with self.database.read() as session:
            user = session.get(User, username)
            try:
                if user is None or not user.password_hash or not _passwords.verify(user.password_hash, password):
                    raise VerificationError()
            except (VerificationError, InvalidHashError):
                raise Unauthenticated("unknown user or wrong password") from None
            return self.principal_for(username, session=session)

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _user(session: Session, username: str) -> User:
        user = session.get(User, username)
        if user is None:
            raise NotFound(f"there is no user '{username}'")
        return user

    @staticmethod
    def _ensure_group(session: Session, name: str) -> None:
        if session.get(Group, name) is None:
            session.add(Group(name=name))
            session.flush()

    @staticmethod
    def _groups_of(session: Session, username: str) -> list[str]:
        return list(session.scalars(
            select(Membership.group_name).where(Membership.username == username).order_by(Membership.group_name)
        ).all())
