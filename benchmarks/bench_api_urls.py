"""The site's URL map plus ``/bench/bare``: a bare Django view returning a small JSON body."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from apps.core.decorators import public_view
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as site_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


@csrf_exempt
@public_view
def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"allowed": True, "reasons": ["bare"], "decision_id": "0"})


urlpatterns = [path("bench/bare", bare), *site_urlpatterns]
