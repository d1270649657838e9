"""The SSO boundary as a step of the tenant entry (``TENANT_ENTRY_CHECKS``).

``tenant_view`` runs it after it has resolved the membership and before the
permission check: a session opens a tenant's console only if it came in by
that tenant's way in (``apps.sso.boundary``). A session from another tenant's
IdP (any member, not only admins), or a password session where the tenant
demands its IdP, is sent to the step-up page, which asks the person to sign in
again with this tenant's IdP or password (and its MFA policy). Tenant A's IdP
never opens tenant B's console, even for a person who belongs to both.

A session opened by an emergency account (``apps.sso.emergency``) is bound to
its tenant: every other tenant answers 404, as for a non-member.

It lives here, a face beside the step-up page it sends people to, because
``apps.access`` (which owns the tenant entry) sits below ``sso`` and may not
import it; the settings name it. The step-up page lives outside ``/t/``, so
this never loops.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from apps.access.decorators import TenantRequest
from apps.accounts.services import session_sign_in
from apps.core.htmx import is_htmx
from apps.sso import boundary, emergency
from apps.sso.services import SESSION_SSO_KEY


def sso_boundary(request: TenantRequest) -> HttpResponse | None:
    """``None`` if this session may enter ``request.tenant``; else a redirect to the step-up page.

    Uses the membership the entry resolved (no second lookup). An htmx request
    gets ``HX-Redirect`` (a plain redirect would swap the step-up page into the
    target) and no ``next`` (the fragment URL is no page to come back to).
    """
    sign_in = session_sign_in(request)
    if emergency.session_refuses_tenant(sign_in, request.tenant.pk):
        # An emergency account's session opens its own tenant only; any other answers as an unknown one.
        raise Http404("No such tenant")
    step_up = boundary.step_up_for(
        membership=request.membership,
        sign_in=sign_in,
        sso=request.session.get(SESSION_SSO_KEY),
    )
    if step_up is None:
        return None
    query = {"tenant": request.tenant.slug}
    htmx = is_htmx(request)
    if request.method == "GET" and not htmx:
        query["next"] = request.get_full_path()
    url = reverse("sso:step_up") + "?" + urlencode(query)
    if htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)
