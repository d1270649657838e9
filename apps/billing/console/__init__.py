"""Billing console faces: the tenant's billing pages (/t/<slug>/billing/) and the staff's plan and dunning pages.

A package of its own so its module names (``views``, ``urls``, ``forms``) are faces to the
architecture test while the app's webhook faces stay in ``apps/billing/views.py``.
"""
