"""Users, groups and tokens: bootstrap, passwords, token hashing, expiry, revocation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bpmn_server.errors import Conflict, Unauthenticated
from bpmn_server.identity import Principal
from bpmn_server.store.models import ApiToken


def test_bootstrap_creates_admin_once(services):
    first = services.identity.bootstrap_admin()
    assert first.created and first.token
    second = services.identity.bootstrap_admin()
    assert not second.created and second.token is None
    principal = services.identity.authenticate_token(first.token)
    assert principal.username == "admin" and principal.is_admin


def test_tokens_are_stored_hashed(services, database):
    issued = services.identity.bootstrap_admin()
    with database.read() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert issued.token not in stored
    assert all(len(value) == 64 for value in stored)


def test_user_groups_and_password(services):
    services.identity.create_user("clerk", password="correct horse", groups=["clerks"])
    principal = services.identity.authenticate_password("clerk", "correct horse")
    assert principal == Principal("clerk", frozenset({"clerks"}), False)
    with pytest.raises(Unauthenticated):
        services.identity.authenticate_password("clerk", "wrong")
    with pytest.raises(Unauthenticated):
        services.identity.authenticate_password("nobody", "wrong")
    services.identity.add_to_group("clerk", "managers")
    assert services.identity.principal_for("clerk").groups == {"clerks", "managers"}


def test_duplicate_user_is_conflict(services):
    services.identity.create_user("clerk")
    with pytest.raises(Conflict):
        services.identity.create_user("clerk")


def test_revoked_and_expired_tokens_are_refused(services, clock):
    services.identity.create_user("clerk")
    issued = services.identity.create_token("clerk", ttl_days=1)
    services.identity.authenticate_token(issued.token)
    clock.advance(86400)
    with pytest.raises(Unauthenticated, match="expired"):
        services.identity.authenticate_token(issued.token)
    other = services.identity.create_token("clerk", ttl_days=0)
    services.identity.revoke_token(other.id, Principal("clerk"))
    with pytest.raises(Unauthenticated, match="revoked"):
        services.identity.authenticate_token(other.token)


def test_api_user_admin_flow(client, auth):
    created = client.post("/api/v1/users", headers=auth,
                          json={"username": "clerk", "password": "long enough", "groups": ["clerks"]})
    assert created.status_code == 201, created.json
    token = client.post("/api/v1/tokens", headers=auth, json={"username": "clerk", "name": "ci"}).json["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json
    assert me == {"username": "clerk", "groups": ["clerks"], "is_admin": False}
    forbidden = client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert forbidden.status_code == 403 and forbidden.mimetype == "application/problem+json"
    bad = client.post("/api/v1/users", headers=auth, json={"username": "", "password": "x"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json["errors"]} == {"username", "password"}
