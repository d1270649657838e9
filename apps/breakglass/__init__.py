"""Break-glass: time-boxed elevated access with approvers and automatic revocation (floor 3).

``breakglass`` owns the workflow (policies, requests, approvals, the time box's
life cycle); the grant itself is a time-boxed role binding owned by
``apps.access`` (``services.binding_timebox_create`` / ``binding_timebox_end``),
which ``authorize()`` checks against the clock at every decision. ``access``
never imports this app.

Public functions, for faces and other apps:

- ``apps.breakglass.services``: ``policy_create``, ``policy_update``,
  ``elevation_request``, ``elevation_approve``, ``elevation_deny``,
  ``elevation_end``, ``elevations_expire`` (the beat task's step), raising
  ``BreakglassError`` with a message meant for the user.
- ``apps.breakglass.selectors`` for the console's reads.
"""
