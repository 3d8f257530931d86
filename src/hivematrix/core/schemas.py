"""Request and response shapes of Core's API."""

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, String
from apiflask.validators import Length, Range, Regexp

NAME = Regexp(r"^[a-z0-9_-]{1,50}$", error="Must be 1-50 of a-z, 0-9, _ and -.")


class ExchangeIn(Schema):
    access_token = String(validate=Length(1, 8192),
                          metadata={"description": "The IdP access token (or send it as Bearer)"})


class TokenIn(Schema):
    token = String(validate=Length(1, 8192), metadata={"description": "Or send it as Bearer"})


class TokenOut(Schema):
    token = String()


class ValidateOut(Schema):
    valid = Boolean()
    user = Dict()
    error = String()


class MessageOut(Schema):
    message = String()


class ServiceTokenIn(Schema):
    calling_service = String(required=True, validate=NAME)
    target_service = String(required=True, validate=NAME)


class ApiKeyIn(Schema):
    api_key = String(required=True, validate=Length(1, 200))


class ApiTokenIn(Schema):
    name = String(required=True, validate=[Length(1, 100),
                                           Regexp(r"(?s).*\S", error="Name must not be blank.")])
    expires_in_days = Integer(load_default=90, validate=Range(1, 365))


class ApiTokenOut(Schema):
    id = Integer()
    name = String()
    prefix = String()
    owner_sub = String()
    created_at = DateTime()
    expires_at = DateTime()
    revoked_at = DateTime(allow_none=True)
    last_used_at = DateTime(allow_none=True)


class ApiTokenCreatedOut(ApiTokenOut):
    token = String(metadata={"description": "Shown only in this response"})
