"""The runtime API (/api/v1/): a face only. It has no models; it composes ``keys`` (who is calling),
``access`` (decisions), ``catalog`` (the objects named in a request) and ``guardrails`` (tool calls).

Framework, measured first (issue #10, item 6): plain Django views with pydantic v2 models and
an OpenAPI 3.1 document built from them (``apps.api.openapi``), rather than django-ninja.
Per-request cost in-process (WSGI handler, no network, the same pydantic models, best of 5 × 5,000):
a bare JSON view 60 µs, a plain view validating the body with pydantic 54 µs, the same endpoint
in django-ninja 1.7.1 146 µs. Ninja's ~90 µs is a tenth of the whole budget of a loopback request
and buys what three small modules give here (``endpoint``, ``openapi``, ``problems``), while its
own error shapes and URL callbacks would have to be overridden for problem+json and for the
architecture test's permission walk.
"""
