"""The decision endpoints of /api/v1/: thin callers of access, catalog and guardrails.

Each endpoint is declared with ``api_view`` (permission, token scope, models);
the steps every call takes are in ``apps.api.endpoint``. The tenant is the
token's, always: a member, dataset or tool is looked up inside it, so another
tenant's id is answered exactly like an id that does not exist (a deny with
"not found in this tenant"), never a 404 that would confirm it exists elsewhere.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from apps.access.decisions import Decision, authorize, held_permissions
from apps.api import hot, schemas
from apps.api.endpoint import ApiCall, api_view
from apps.api.problems import problem
from apps.catalog.models import Tool
from apps.catalog.selectors import resource_for_decision
from apps.core import context
from apps.core.decorators import cookieless_view, public_view
from apps.guardrails.services import check_tool_call, check_tool_output
from apps.tenants.selectors import membership_for_decision

NO_SUCH_MEMBER = "no such member in this tenant"


def _decision_id(index: int | None = None) -> str:
    request_id = context.current().request_id
    return request_id if index is None else f"{request_id}.{index}"


def _subject(call: ApiCall, ref: schemas.ClientSubject | schemas.MemberSubject) -> Any:
    """The access subject ``ref`` names: the calling client, or a member of the token's tenant (None if none)."""
    if isinstance(ref, schemas.ClientSubject):
        return call.client
    tenant = call.tenant
    if ref.user_id is not None:
        # Keyed by the access version too: a role change of the member is seen on the next call.
        key = ("member", tenant.id, call.token.access_version, "id", ref.user_id)
        return hot.get_or_load(key, lambda: membership_for_decision(tenant=tenant, user_id=ref.user_id))
    email = (ref.email or "").strip().lower()
    return hot.get_or_load(
        ("member", tenant.id, call.token.access_version, "email", email),
        lambda: membership_for_decision(tenant=tenant, email=email),
    )


def _resource(call: ApiCall, kind: str, ident: str) -> Any:
    tenant = call.tenant
    # Keyed by the access version: every catalog write moves it, so a reclassified or deleted object counts next call.
    return hot.get_or_load(
        ("resource", tenant.id, call.token.access_version, kind, ident),
        lambda: resource_for_decision(tenant=tenant, kind=kind, ident=ident),
    )


def _decide(call: ApiCall, check: schemas.AuthorizeRequest) -> Decision:
    subject = _subject(call, check.subject)
    if subject is None:
        return Decision(False, check.action, (NO_SUCH_MEMBER,))
    resource = None
    if check.resource is not None:
        resource = _resource(call, check.resource.type, check.resource.id)
        if resource is None:
            # Missing and another tenant's look the same; logged like any denial would be, without a row to name.
            return Decision(False, check.action, (f"no such {check.resource.type} in this tenant",))
    return authorize(subject, check.action, resource, tenant=call.tenant)


def _answer(decision: Decision, index: int | None = None) -> schemas.AuthorizeResponse:
    return schemas.AuthorizeResponse(
        allowed=decision.allowed, reasons=list(decision.reasons), decision_id=_decision_id(index)
    )


@api_view(
    "tenant.view",
    scope="authorize",
    method="POST",
    path="authorize",
    body=schemas.AuthorizeRequest,
    response=schemas.AuthorizeResponse,
    summary="May this subject do this (on this resource)?",
)
def authorize_one(call: ApiCall, body: schemas.AuthorizeRequest) -> schemas.AuthorizeResponse:
    """The same ``authorize()`` the console uses, for the calling client or a member of its tenant.

    A denial is written to the tenant's decision log; ``decision_id`` names it.
    """
    return _answer(_decide(call, body))


@api_view(
    "tenant.view",
    scope="authorize",
    method="POST",
    path="authorize/batch",
    body=schemas.AuthorizeBatchRequest,
    response=schemas.AuthorizeBatchResponse,
    summary="Up to 100 authorize checks in one call, answered in order.",
)
def authorize_batch(call: ApiCall, body: schemas.AuthorizeBatchRequest) -> schemas.AuthorizeBatchResponse:
    """Each check is answered as ``POST /authorize`` would; ``decision_id`` is the request id and the index."""
    return schemas.AuthorizeBatchResponse(
        results=[_answer(_decide(call, check), index) for index, check in enumerate(body.checks)]
    )


@api_view(
    "tenant.view",
    scope="tool-calls",
    method="POST",
    path="tool-calls/check",
    body=schemas.ToolCallCheckRequest,
    response=schemas.ToolCallCheckResponse,
    summary="May the subject make this tool call (and is its output within the cap)?",
)
def tool_call_check(call: ApiCall, body: schemas.ToolCallCheckRequest) -> schemas.ToolCallCheckResponse:
    """``check_tool_call`` (allowlist, tool.execute, data lineage, argument schema and size, egress) and,
    with ``output``, ``check_tool_output``: every reason to refuse is listed, with a JSON path where one applies.
    """
    reasons: list[schemas.Reason] = []
    subject = _subject(call, body.subject)
    tool = _resource(call, "tool", body.tool_id)
    if subject is None:
        reasons.append(schemas.Reason(code="subject_not_found", message=f"The subject: {NO_SUCH_MEMBER}."))
    if not isinstance(tool, Tool):
        reasons.append(schemas.Reason(code="tool_not_found", message="No such tool in this tenant."))
    datasets = []
    for index, ident in enumerate(body.datasets):
        dataset = _resource(call, "dataset", ident)
        if dataset is None:
            reasons.append(
                schemas.Reason(
                    code="dataset_not_found", message="No such dataset in this tenant.", path=f"datasets[{index}]"
                )
            )
        else:
            datasets.append(dataset)
    if subject is not None and isinstance(tool, Tool):
        verdict = check_tool_call(subject=subject, tool=tool, arguments=body.arguments, datasets=datasets)
        reasons.extend(schemas.Reason(**reason) for reason in verdict.reasons)
        if body.output is not None:
            output_verdict = check_tool_output(tool=tool, output=body.output)
            reasons.extend(schemas.Reason(**reason) for reason in output_verdict.reasons)
    return schemas.ToolCallCheckResponse(allowed=not reasons, reasons=reasons, decision_id=_decision_id())


@api_view("tenant.view", scope="me", method="GET", path="me", response=schemas.MeResponse, summary="Who am I?")
def me(call: ApiCall, body: None) -> schemas.MeResponse:
    """The calling client, its tenant, the role it acts as and the permissions it holds tenant-wide."""
    client, tenant = call.client, call.tenant
    return schemas.MeResponse(
        client=schemas.ClientInfo(client_id=client.client_id, name=client.name),
        tenant=schemas.TenantInfo(id=tenant.id, slug=tenant.slug, name=tenant.name),
        role=client.builtin_role or (client.role.name if client.role_id else ""),
        permissions=sorted(held_permissions(client, tenant=tenant)),
        token_expires_at=call.token.exp,
    )


@public_view
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any other path under /api/v1/: a problem document, not the console's HTML 404 page."""
    return problem(404, "not-found", "There is no such endpoint; see /api/v1/openapi.json.")


cookieless_view(not_found)
