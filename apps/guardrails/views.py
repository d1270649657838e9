"""Guardrails console pages (thin: parse, call the check, render)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from apps.access.decorators import tenant_view
from apps.core.htmx import render_page
from apps.guardrails import services
from apps.guardrails.forms import TryToolCallForm


@tenant_view("tool.execute")
def try_tool_call(request: HttpRequest) -> HttpResponse:
    """Run ``check_tool_call`` as the signed-in member and show the verdict with every reason.

    Nothing is executed; a denial is audited like any other. With htmx only the
    form-and-verdict panel is returned; without JavaScript, the whole page.
    """
    initial = {"tool": request.GET.get("tool", "")[:20]}
    form = TryToolCallForm(request.POST or None, tenant=request.tenant, subject=request.membership, initial=initial)
    verdict = None
    if request.method == "POST" and form.is_valid():
        verdict = services.check_tool_call(
            subject=request.membership,
            tool=form.cleaned_data["tool"],
            arguments=form.cleaned_data["arguments"],
            datasets=list(form.cleaned_data["datasets"]),
        )
    context = {"form": form, "verdict": verdict}
    return render_page(request, "guardrails/try.html", context, partial="panel")
