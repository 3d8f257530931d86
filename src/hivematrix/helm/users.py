"""Helm's users and groups pages: thin views over :mod:`hivematrix.helm.directory`.

Admins only, like every Helm route. Against the built-in identity service Helm acts with the
signed-in administrator's own token; against Keycloak with Helm's admin credentials. A
temporary password is shown once, in the answer to the form that made it, and never stored.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hivematrix.common.auth import admin_required, bearer_token
from hivematrix.common.errors import problem
from hivematrix.common.logging import CORRELATION_HEADER, current_correlation_id
from hivematrix.common.service_client import ServiceClient, UnknownServiceError
from hivematrix.helm import directory
from hivematrix.helm.directory import Directory, DirectoryError, DirectoryUser, NotConfigured

users = APIBlueprint("helm_users", __name__, tag="Helm")

PROVIDER_TITLES = {directory.IDENTITY: "built-in identity service",
                   directory.KEYCLOAK: "Keycloak"}
#: The notices a redirect may ask for (never text from the query string itself).
NOTICES = {"groups": "Groups saved.", "enabled": "The user is enabled.",
           "disabled": "The user is disabled and signed out."}
CREATE_FIELDS = ("username", "name", "email", "groups")


def _directory() -> Directory:
    client: ServiceClient = current_app.extensions["hivematrix.service_client"]

    def identity_url() -> str:
        try:
            return client.base_url(directory.IDENTITY)
        except UnknownServiceError as exc:
            raise NotConfigured("The identity service is not registered in services.json.") from exc

    correlation_id = current_correlation_id()
    return directory.open_directory(
        current_app.config, admin_token=bearer_token(), identity_url=identity_url,
        http=client.http, headers={CORRELATION_HEADER: correlation_id} if correlation_id else {})


def _private(body: str, status: int = 200) -> Response:
    """A page holding a password: not to be kept by any cache."""
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _unavailable_page(exc: DirectoryError) -> Any:
    """What a page shows when the directory cannot be used.

    A missing setting is the platform's state, shown like the dashboard's "no services" (200,
    with what to set); a provider that fails to answer is the error it is.
    """
    if isinstance(exc, NotConfigured):
        return render_template("helm/users.html", users=[], search="", provider=None,
                               setup_error=exc.message)
    return problem(exc.status, exc.message)


def _audit(message: str, **fields: Any) -> None:
    # Who did it is in every record's ``user`` field already.
    current_app.logger.warning(message, extra=fields)


@users.get("/users")
@users.doc(hide=True)
@admin_required
def user_list() -> Any:
    search = request.args.get("q", "").strip()[:200]
    try:
        found = _directory()
        listed = found.list_users(search)
    except DirectoryError as exc:
        return _unavailable_page(exc)
    return render_template("helm/users.html", users=listed, search=search,
                           provider=PROVIDER_TITLES[found.provider])


def _new_form(found: Directory, *, values: dict[str, Any], errors: dict[str, list[str]],
              error: str | None = None, status: int = 200) -> Any:
    groups = found.list_groups()
    page = render_template("helm/users_new.html", values=values, errors=errors, error=error,
                           groups=groups, provider=PROVIDER_TITLES[found.provider])
    return page, status


@users.get("/users/new")
@users.doc(hide=True)
@admin_required
def new_user() -> Any:
    try:
        return _new_form(_directory(), values={"groups": []}, errors={})
    except DirectoryError as exc:
        return _unavailable_page(exc)


@users.post("/users/new")
@users.doc(hide=True)
@admin_required
def create_user() -> Any:
    values = {"username": request.form.get("username", ""), "name": request.form.get("name", ""),
              "email": request.form.get("email", ""), "groups": request.form.getlist("groups")}
    try:
        found = _directory()
        known = [group.name for group in found.list_groups()]
        new, errors = directory.parse_new_user(request.form, values["groups"], known)
        if new is None:
            return _new_form(found, values=values, errors=errors, status=422,
                             error=_named(errors))
        try:
            user, password = found.create_user(new)
        except DirectoryError as exc:
            if exc.field in CREATE_FIELDS:
                fields = {str(exc.field): [exc.message]}
                return _new_form(found, values=values, errors=fields, status=exc.status,
                                 error=_named(fields))
            return _new_form(found, values=values, errors={}, error=exc.message,
                             status=exc.status)
    except DirectoryError as exc:
        return problem(exc.status, exc.message)
    _audit("user created by an admin", target_user=user.username, groups=list(user.groups))
    return _private(_detail_page(found, user, notice="User created.", password=password), 201)


def _named(errors: dict[str, list[str]]) -> str:
    """``username: A username is required.`` for each field, for the alert above the form."""
    return " ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())


def _detail_page(found: Directory, user: DirectoryUser, *, notice: str | None = None,
                 error: str | None = None, password: str | None = None) -> str:
    return render_template("helm/users_detail.html", user=user, groups=found.list_groups(),
                           notice=notice, error=error, temporary_password=password,
                           provider=PROVIDER_TITLES[found.provider])


def _refused(found: Directory, username: str, exc: DirectoryError) -> Any:
    """The user's page again, with the provider's refusal, at the refusal's status."""
    if isinstance(exc, directory.UnknownUser):
        return problem(404, exc.message)
    try:
        user = found.get_user(username)
    except DirectoryError as again:
        return problem(again.status, again.message)
    message = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return _detail_page(found, user, error=message), exc.status


@users.get("/users/<username>")
@users.doc(hide=True)
@admin_required
def user_detail(username: str) -> Any:
    try:
        found = _directory()
        return _detail_page(found, found.get_user(username),
                            notice=NOTICES.get(request.args.get("saved", "")))
    except DirectoryError as exc:
        return _unavailable_page(exc)


@users.post("/users/<username>/groups")
@users.doc(hide=True)
@admin_required
def save_groups(username: str) -> Any:
    groups = [name for name in request.form.getlist("groups") if name.strip()]
    try:
        found = _directory()
    except DirectoryError as exc:
        return problem(exc.status, exc.message)
    try:
        known = {group.name for group in found.list_groups()}
        unknown = sorted(set(groups) - known)
        if unknown:
            raise directory.InvalidInput(f"Unknown group(s): {', '.join(unknown)}.",
                                         field="groups")
        user = found.set_groups(username, groups)
    except DirectoryError as exc:
        return _refused(found, username, exc)
    _audit("user groups changed by an admin", target_user=user.username,
           groups=list(user.groups))
    return redirect(url_for("helm_users.user_detail", username=user.username, saved="groups"),
                    303)


@users.post("/users/<username>/enabled")
@users.doc(hide=True)
@admin_required
def save_enabled(username: str) -> Any:
    wanted = request.form.get("enabled", "")
    if wanted not in ("true", "false"):
        return problem(422, "enabled: must be 'true' or 'false'.", title="Invalid input")
    try:
        found = _directory()
    except DirectoryError as exc:
        return problem(exc.status, exc.message)
    try:
        user = found.set_enabled(username, wanted == "true")
    except DirectoryError as exc:
        return _refused(found, username, exc)
    _audit("user enabled by an admin" if user.enabled else "user disabled by an admin",
           target_user=user.username)
    return redirect(url_for("helm_users.user_detail", username=user.username,
                            saved="enabled" if user.enabled else "disabled"), 303)


@users.post("/users/<username>/password")
@users.doc(hide=True)
@admin_required
def reset_password(username: str) -> Any:
    try:
        found = _directory()
    except DirectoryError as exc:
        return problem(exc.status, exc.message)
    try:
        password = found.reset_password(username)
        user = found.get_user(username)
    except DirectoryError as exc:
        return _refused(found, username, exc)
    _audit("user password reset by an admin", target_user=user.username)
    return _private(_detail_page(found, user, notice="Password reset.", password=password))


@users.get("/groups")
@users.doc(hide=True)
@admin_required
def group_list() -> Any:
    try:
        found = _directory()
        groups = found.list_groups()
    except DirectoryError as exc:
        return _unavailable_page(exc)
    return render_template("helm/users_groups.html", groups=groups,
                           provider=PROVIDER_TITLES[found.provider])
