"""Account pages Bastion adds next to allauth's: ending one session from the session list.

Thin: parse, call one service, redirect. Mounted under /accounts/ (see urls.py).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.accounts import services


@login_required
@require_POST
def session_end(request: HttpRequest, session_id: int) -> HttpResponse:
    """Sign out one of the requester's own sessions; an unknown or another user's session id is a 404."""
    ended = services.user_session_end(request=request, session_id=session_id)
    if ended is None:
        raise Http404("No such session")
    if ended == "current":
        messages.info(request, "You signed out of this session.")
        return redirect("account_login")
    messages.success(request, "That session was signed out.")
    return redirect("usersessions_list")


# Any signed-in user may end their own sessions; the architecture test reads this declaration.
session_end.required_permission = "authenticated"  # type: ignore[attr-defined]
