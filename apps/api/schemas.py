"""Request and response models of the runtime API (pydantic v2): validation and the OpenAPI schemas.

Every request model refuses unknown fields (``extra="forbid"``): a misspelt
field is a 422, never silently ignored. Ids are strings of bounded length (so
any unicode is a clean "not found", never a 500); they are matched only inside
the token's tenant.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from apps.access.permissions import PERMISSIONS

# Every catalog permission, as an enum in the schema (a typo is a 422 that lists the choices).
Action = Literal[tuple(sorted(PERMISSIONS))]  # type: ignore[valid-type]
Id = Annotated[str, Field(min_length=1, max_length=64, description="The object's id in the token's tenant.")]
MAX_BATCH = 100


def _not_a_bool(value: Any) -> Any:
    # JSON Schema's integer takes 2.0 (pydantic's lax mode too), but never ``true``: pydantic would read 1.
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


UserId = Annotated[int, Field(ge=1, le=2**62), BeforeValidator(_not_a_bool)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientSubject(Strict):
    """The calling API client itself."""

    type: Literal["client"]


class MemberSubject(Strict):
    """A member of the token's tenant, by user id or by e-mail (exactly one)."""

    type: Literal["member"]
    user_id: UserId | None = None
    email: Annotated[str, Field(min_length=3, max_length=254)] | None = None


Subject = Annotated[ClientSubject | MemberSubject, Field(discriminator="type")]


class ResourceRef(Strict):
    """A catalog object of the token's tenant."""

    type: Literal["dataset", "tool", "model"]
    id: Id


class AuthorizeRequest(Strict):
    subject: Subject
    action: Action
    resource: ResourceRef | None = None


class AuthorizeResponse(BaseModel):
    allowed: bool
    reasons: list[str]
    decision_id: str = Field(description="Names this decision in the logs (a denial is in the decision log).")


class AuthorizeBatchRequest(Strict):
    checks: Annotated[list[AuthorizeRequest], Field(min_length=1, max_length=MAX_BATCH)]


class AuthorizeBatchResponse(BaseModel):
    results: list[AuthorizeResponse]


class ToolCallCheckRequest(Strict):
    subject: Subject
    tool_id: Id
    arguments: Any = Field(default_factory=dict, description="The call's arguments, as the tool will get them.")
    datasets: Annotated[list[Id], Field(max_length=MAX_BATCH)] = Field(default_factory=list)
    output: Annotated[str, Field(max_length=1024 * 1024)] | None = Field(
        default=None, description="The tool's output, to check against its output cap."
    )


class Reason(BaseModel):
    code: str
    message: str
    path: str | None = None


class ToolCallCheckResponse(BaseModel):
    allowed: bool
    reasons: list[Reason]
    decision_id: str


class ClientInfo(BaseModel):
    client_id: str
    name: str


class TenantInfo(BaseModel):
    id: int
    slug: str
    name: str


class MeResponse(BaseModel):
    client: ClientInfo
    tenant: TenantInfo
    role: str
    permissions: list[str]
    token_expires_at: int = Field(description="The access token's exp (seconds since the epoch).")
