"""API clients, access tokens and the signing keys that sign them (floor 3).

Public functions, for other apps and the API face (nothing else of this app is
imported from outside it):

- ``apps.keys.tokens.verify_access_token(token, *, audience) -> TokenContext``
  (client, tenant, scopes, audiences, jti, exp, kid), raising
  ``apps.keys.tokens.TokenError(code, description)`` with a ``reason``; every
  refusal is audited. Warm: no database query, one shared-cache read.
- ``apps.keys.tokens.API_SCOPES`` and ``apps.keys.conf.default_audience()``.
- ``apps.keys.services``: ``apiclient_create``, ``apiclient_secret_rotate``,
  ``apiclient_secret_revoke``, ``apiclient_disable``, ``apiclient_enable``,
  ``apiclient_grant_assign``/``_revoke``, ``token_policy_set``,
  ``signing_keys_rotate``, ``signing_key_revoke``.
- ``apps.keys.selectors`` for the console's reads.

An ``ApiClient`` is a subject ``apps.access`` decides for (``access.subjects.Subject``):
``authorize(client, action, resource)`` works as for a membership.
"""
