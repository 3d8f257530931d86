"""The identity provider's tables: users and groups, login throttling, and OAuth 2 state.

The OAuth tables use authlib's SQLAlchemy mixins, which keep their own timestamps as integer
epoch seconds (authlib's format); every column this service defines itself is a
timezone-aware UTC ``UTCDateTime``. Authorization codes and tokens are stored as SHA-256
digests, never in the clear, so a copy of the database cannot be replayed against the service.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import datetime, timedelta

from authlib.integrations.sqla_oauth2 import (
    OAuth2AuthorizationCodeMixin,
    OAuth2ClientMixin,
    OAuth2TokenMixin,
)
from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hivematrix.common.db import UTCDateTime, utcnow

USERNAME_MAX = 100
NAME_MAX = 200
EMAIL_MAX = 254
ACCOUNT_NUMBER_MAX = 64
#: The groups the platform maps to permission levels (admins > technicians > billing > client).
GROUPS = ("admins", "technicians", "billing", "client")
#: How long an authorization code may wait before it is exchanged.
CODE_LIFETIME = timedelta(seconds=120)


def digest(secret: str) -> str:
    """The SHA-256 hex digest under which a code or token is stored and looked up."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_stamp() -> str:
    return secrets.token_urlsafe(16)


class Base(DeclarativeBase):
    """Every table of this service; Alembic compares migrations against its metadata."""


user_groups = Table(
    "identity_user_groups",
    Base.metadata,
    Column("user_id", ForeignKey("identity_users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("identity_groups.id", ondelete="CASCADE"), primary_key=True),
)


class Group(Base):
    __tablename__ = "identity_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class User(Base):
    __tablename__ = "identity_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The ``sub`` claim: stable and opaque, unlike the username.
    subject: Mapped[str] = mapped_column(String(36), unique=True,
                                         default=lambda: str(uuid.uuid4()))
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX))
    #: The company a client user belongs to; released as the ``account_number`` claim.
    account_number: Mapped[str | None] = mapped_column(String(ACCOUNT_NUMBER_MAX))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: argon2 hash; ``None`` until a password is set (such a user cannot sign in).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Changes whenever the password changes or the user is disabled, ending browser sessions.
    security_stamp: Mapped[str] = mapped_column(String(32), default=new_stamp)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    groups: Mapped[list[Group]] = relationship(secondary=user_groups, lazy="selectin",
                                               order_by=Group.name)

    @property
    def group_names(self) -> list[str]:
        return [group.name for group in self.groups]

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    def get_user_id(self) -> int:
        """authlib's user protocol."""
        return self.id


class LoginAttempt(Base):
    """Failed sign-ins per username (known or not), for lockout with increasing back-off."""

    __tablename__ = "identity_login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: How many times this username has been locked since its last success (sets the period).
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class OAuthClient(Base, OAuth2ClientMixin):
    """A registered relying party (Core's ``core-client``)."""

    __tablename__ = "identity_oauth_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id = Column(String(48), unique=True, nullable=False)

    @property
    def token_endpoint_auth_methods(self) -> list[str]:
        methods = self.client_metadata.get("token_endpoint_auth_methods")
        return list(methods or [self.token_endpoint_auth_method])

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """A confidential client may use any of its registered methods, at every endpoint."""
        return method in self.token_endpoint_auth_methods

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.client_secret) and secrets.compare_digest(
            self.client_secret.encode(), client_secret.encode())


class AuthorizationCode(Base, OAuth2AuthorizationCodeMixin):
    """A one-time code; kept (marked used) after its exchange so a replay can be detected."""

    __tablename__ = "identity_oauth_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id", ondelete="CASCADE"),
                                         index=True)
    #: The browser session (``sid`` claim) that approved the request.
    sid: Mapped[str] = mapped_column(String(64))
    #: Shared by every token descending from this code: revoked together on replay.
    family: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_urlsafe(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")

    def is_expired(self) -> bool:
        return self.created_at + CODE_LIFETIME < utcnow()


class Token(Base, OAuth2TokenMixin):
    """An access token and its refresh token (both stored as digests)."""

    __tablename__ = "identity_oauth_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id", ondelete="CASCADE"),
                                         index=True)
    sid: Mapped[str] = mapped_column(String(64), index=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    #: When the user authenticated (epoch seconds); refreshing stops a session-length later.
    auth_time: Mapped[int] = mapped_column(Integer)

    user: Mapped[User] = relationship(lazy="joined")
    client: Mapped[OAuthClient] = relationship(
        primaryjoin="foreign(Token.client_id) == OAuthClient.client_id", lazy="joined",
        viewonly=True)

    def get_user(self) -> User:
        return self.user

    def get_client(self) -> OAuthClient:
        return self.client

    def is_revoked(self) -> bool:
        return bool(self.access_token_revoked_at)

    def is_expired(self) -> bool:
        return bool(self.expires_in) and self.issued_at + self.expires_in < time.time()
