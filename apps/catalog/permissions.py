"""The catalog permissions each page and selector needs, named once.

All come from ``apps.access.permissions``; nothing new is added there. Managing
models reuses ``tool.manage``: registering a model, its prices and whether it
is enabled is the same kind of curation as registering a tool (owner and admin
hold it, members do not). ``billing.manage`` is owner-only and about payment
settings, ``key.manage`` about credentials; neither fits. A dedicated
``model.manage`` can replace this constant later without touching the views.
"""

from __future__ import annotations

DATASET_READ = "dataset.read"
DATASET_MANAGE = "dataset.manage"
TOOL_EXECUTE = "tool.execute"
TOOL_MANAGE = "tool.manage"
MODEL_USE = "model.use"
MODEL_MANAGE = TOOL_MANAGE
