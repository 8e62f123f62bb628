"""Users, groups and API tokens (administrators manage users; everyone manages their own tokens)."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from .arguments import Blueprint
from .auth import current_principal, require_admin, services

blp = Blueprint("identity", __name__, url_prefix="/api/v1", description="Users, groups and tokens")


class PrincipalSchema(Schema):
    username = fields.String(required=True)
    groups = fields.List(fields.String())
    is_admin = fields.Boolean()


class UserCreateSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=255))
    password = fields.String(load_only=True, validate=validate.Length(min=8, max=1024))
    groups = fields.List(fields.String(validate=validate.Length(min=1, max=255)), load_default=list)
    is_admin = fields.Boolean(load_default=False)
    display_name = fields.String()
    email = fields.Email()


class UserSchema(Schema):
    username = fields.String(required=True)
    display_name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    is_admin = fields.Boolean()
    active = fields.Boolean()
    groups = fields.List(fields.String())


class MembershipSchema(Schema):
    group = fields.String(required=True, validate=validate.Length(min=1, max=255))


class TokenCreateSchema(Schema):
    name = fields.String(load_default="api", validate=validate.Length(min=1, max=255))
    ttl_days = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=3650))
    username = fields.String(metadata={"description": "admins may issue tokens for other users"})


class TokenSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    name = fields.String()
    token = fields.String(metadata={"description": "shown only once"})
    expires_at = fields.DateTime(allow_none=True)


def _user_body(user, groups) -> dict:
    return {"username": user.username, "display_name": user.display_name, "email": user.email,
            "is_admin": user.is_admin, "active": user.active, "groups": groups}


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, PrincipalSchema)
    def get(self):
        """The caller: username, groups, admin flag."""
        principal = current_principal()
        return {"username": principal.username, "groups": sorted(principal.groups), "is_admin": principal.is_admin}


@blp.route("/users")
class Users(MethodView):
    @blp.response(200, UserSchema(many=True))
    def get(self):
        """All users (administrators only)."""
        require_admin()
        return [_user_body(user, groups) for user, groups in services().identity.list_users()]

    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    def post(self, body):
        """Create a user, with its groups (administrators only)."""
        admin = require_admin()
        user = services().identity.create_user(actor=admin.username, **body)
        return _user_body(user, sorted(body.get("groups", [])))


@blp.route("/users/<username>/groups")
class UserGroups(MethodView):
    @blp.arguments(MembershipSchema)
    @blp.response(204)
    def post(self, body, username: str):
        """Add a user to a group (administrators only)."""
        admin = require_admin()
        services().identity.add_to_group(username, body["group"], actor=admin.username)


@blp.route("/users/<username>/groups/<group>")
class UserGroup(MethodView):
    @blp.response(204)
    def delete(self, username: str, group: str):
        """Remove a user from a group (administrators only)."""
        admin = require_admin()
        services().identity.remove_from_group(username, group, actor=admin.username)


@blp.route("/tokens")
class Tokens(MethodView):
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, TokenSchema)
    def post(self, body):
        """Issue an API token for yourself (or, as an administrator, for another user)."""
        principal = current_principal()
        username = body.get("username") or principal.username
        if username != principal.username:
            require_admin()
        issued = services().identity.create_token(
            username, body["name"], ttl_days=body["ttl_days"], actor=principal.username
        )
        return {"id": issued.id, "username": issued.username, "name": issued.name, "token": issued.token,
                "expires_at": issued.expires_at}


@blp.route("/tokens/<int:token_id>")
class TokenResource(MethodView):
    @blp.response(204)
    def delete(self, token_id: int):
        """Revoke a token."""
        services().identity.revoke_token(token_id, current_principal())
