"""Request and response shapes of the identity service's admin API."""

import re

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Email, Integer, List, String
from apiflask.validators import Length, Regexp

from hivematrix.identity.accounts import USERNAME_PATTERN
from hivematrix.identity.models import ACCOUNT_NUMBER_MAX, EMAIL_MAX, GROUPS, NAME_MAX
from hivematrix.identity.passwords import MAX_LENGTH, MIN_LENGTH

_USERNAME = [Length(1, 100), Regexp(
    USERNAME_PATTERN, flags=re.IGNORECASE,
    error="Use letters, digits, '.', '_', '@' or '-', starting with a letter or digit.")]
# Keycloak-style group paths ("/admins") are accepted too.
_GROUP = Regexp(f"^/?({'|'.join(GROUPS)})$", error=f"Must be one of: {', '.join(GROUPS)}.")
_PASSWORD = Length(MIN_LENGTH, MAX_LENGTH)
#: No control characters (PostgreSQL cannot even store NUL).
_PRINTABLE = Regexp(r"^[^\x00-\x1f\x7f]*$", error="Must not contain control characters.")


class UserIn(Schema):
    username = String(required=True, validate=_USERNAME)
    name = String(load_default="", validate=[Length(max=NAME_MAX), _PRINTABLE])
    email = Email(load_default=None, allow_none=True,
                  validate=[Length(max=EMAIL_MAX), _PRINTABLE])
    account_number = String(load_default=None, allow_none=True,
                            validate=[Length(max=ACCOUNT_NUMBER_MAX), _PRINTABLE],
                            metadata={"description": "The client company of a client user"})
    groups = List(String(validate=_GROUP), load_default=list)
    password = String(load_default=None, validate=_PASSWORD,
                      metadata={"description": "Omit to create a user who cannot sign in yet"})
    must_change_password = Boolean(
        load_default=None, allow_none=True,
        metadata={"description": "Default: true when a password is given"})
    enabled = Boolean(load_default=True)


class UserPatch(Schema):
    name = String(validate=[Length(max=NAME_MAX), _PRINTABLE])
    email = Email(allow_none=True, validate=[Length(max=EMAIL_MAX), _PRINTABLE])
    account_number = String(allow_none=True,
                            validate=[Length(max=ACCOUNT_NUMBER_MAX), _PRINTABLE])
    enabled = Boolean(metadata={"description": "false signs the user out everywhere"})


class PasswordIn(Schema):
    password = String(required=True, validate=_PASSWORD)
    temporary = Boolean(load_default=True,
                        metadata={"description": "Ask for a new password at next sign-in"})


class GroupsIn(Schema):
    groups = List(String(validate=_GROUP), required=True)


class UserOut(Schema):
    username = String()
    sub = String(attribute="subject", metadata={"description": "The OIDC subject"})
    name = String()
    email = String(allow_none=True)
    account_number = String(allow_none=True)
    groups = List(String(), attribute="group_names")
    enabled = Boolean()
    has_password = Boolean(metadata={"description": "false: cannot sign in until one is set"})
    must_change_password = Boolean()
    password_changed_at = DateTime(allow_none=True)
    created_at = DateTime()
    updated_at = DateTime()


class GroupOut(Schema):
    name = String()
    members = Integer()
