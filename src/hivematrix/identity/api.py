"""The admin JSON API: users, passwords and group membership. Administrators only."""

from __future__ import annotations

from typing import Any, NoReturn

from apiflask import APIBlueprint, abort

from hivematrix.common.auth import admin_required, service_allowed
from hivematrix.common.db import get_session
from hivematrix.identity import accounts
from hivematrix.identity.accounts import AccountError, LastAdmin, UnknownUser, UserExists
from hivematrix.identity.models import User
from hivematrix.identity.passwords import WeakPassword
from hivematrix.identity.schemas import GroupOut, GroupsIn, PasswordIn, UserIn, UserOut, UserPatch

api = APIBlueprint("identity_api", __name__, tag="Users")


def _rules() -> accounts.PasswordRules:
    from flask import current_app

    return accounts.PasswordRules(current_app.config["IDENTITY_PASSWORD_MIN_LENGTH"])


def _fail(exc: AccountError | WeakPassword, field: str | None = None) -> NoReturn:
    """Turn a refusal from the accounts module into a problem response."""
    if isinstance(exc, UnknownUser):
        abort(404, str(exc))
    if isinstance(exc, UserExists | LastAdmin):
        abort(409, str(exc))
    if field:
        abort(422, detail={"json": {field: [str(exc)]}})
    abort(422, str(exc))


def _user(username: str) -> User:
    try:
        return accounts.get_user(get_session(), username)
    except UnknownUser as exc:
        _fail(exc)


@api.get("/api/users")
@api.doc(summary="List users", description="Admins, and Codex (it keeps its staff list from it).")
@admin_required
@service_allowed("codex")
@api.output(UserOut(many=True))
def list_users() -> Any:
    return accounts.list_users(get_session())


@api.post("/api/users")
@api.doc(summary="Create a user",
         description="A given password is temporary unless `must_change_password` is false.")
@admin_required
@api.input(UserIn, location="json", arg_name="data")
@api.output(UserOut, status_code=201)
def create_user(data: dict[str, Any]) -> Any:
    session = get_session()
    try:
        user = accounts.create_user(session, accounts.NewUser(**data), _rules())
    except WeakPassword as exc:
        _fail(exc, "password")
    except accounts.UnknownGroup as exc:
        _fail(exc, "groups")
    except AccountError as exc:
        _fail(exc, "username")
    session.commit()
    return user


@api.get("/api/users/<username>")
@api.doc(summary="Show a user")
@admin_required
@api.output(UserOut)
def get_user(username: str) -> Any:
    return _user(username)


@api.patch("/api/users/<username>")
@api.doc(summary="Change a user's profile or enable/disable them",
         description="Disabling signs the user out everywhere and stops their refresh tokens.")
@admin_required
@api.input(UserPatch(partial=True), location="json", arg_name="changes")
@api.output(UserOut)
def update_user(username: str, changes: dict[str, Any]) -> Any:
    session = get_session()
    user = _user(username)
    try:
        accounts.update_user(session, user, changes)
    except AccountError as exc:
        _fail(exc)
    session.commit()
    return user


@api.post("/api/users/<username>/password")
@api.doc(summary="Set a user's password",
         description="Temporary by default (changed at next sign-in); lifts a lockout.")
@admin_required
@api.input(PasswordIn, location="json", arg_name="data")
@api.output({}, status_code=204)
def set_password(username: str, data: dict[str, Any]) -> Any:
    session = get_session()
    user = _user(username)
    try:
        accounts.reset_password(session, user, data["password"], temporary=data["temporary"],
                                rules=_rules())
    except WeakPassword as exc:
        _fail(exc, "password")
    session.commit()
    return ""


@api.put("/api/users/<username>/groups")
@api.doc(summary="Replace a user's groups")
@admin_required
@api.input(GroupsIn, location="json", arg_name="data")
@api.output(UserOut)
def set_groups(username: str, data: dict[str, Any]) -> Any:
    session = get_session()
    user = _user(username)
    try:
        accounts.set_groups(session, user, data["groups"])
    except AccountError as exc:
        _fail(exc, "groups")
    session.commit()
    return user


@api.get("/api/groups")
@api.doc(summary="List groups with their member counts")
@admin_required
@api.output(GroupOut(many=True))
def list_groups() -> Any:
    return [{"name": name, "members": count}
            for name, count in accounts.list_groups(get_session())]
